import BrokerCore
import Foundation
import HTTPTypes
import XCTest

/// Each interface's messages speak its own language: the same refusal names a JSON field over
/// HTTP (`{"force": true}`, `access_lifetime`) and an option on the command line (`--force`,
/// `--access-lifetime`).
final class InterfaceSpellingTests: XCTestCase {
    func testTheAdminAPINamesJSONFields() async throws {
        let harness = try await ServerHarness.withAdmin()
        do {
            try await Self.checkHTTPSpelling(harness)
        } catch {
            try? await harness.shutdown()
            throw error
        }
        try await harness.shutdown()
    }

    static func checkHTTPSpelling(_ harness: ServerHarness) async throws {
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            var answer = try await client.api(.post, "/api/admin/keys/rotate", token: root)
            XCTAssertEqual(answer.status, .conflict)
            var detail = answer.body["detail"] as? String ?? ""
            XCTAssertTrue(detail.contains(#"or now with {"force": true} (tokens it signs"#), detail)
            XCTAssertFalse(detail.contains("--"), detail)

            let policies: [(body: String, expected: String)] = [
                (#"{"access_lifetime":10}"#, "access_lifetime must be between 60 and the broker's access_lifetime (3600) seconds"),
                (#"{"audiences":[]}"#, "audiences must list 1 to 16 distinct names"),
            ]
            for (body, expected) in policies {
                answer = try await client.api(.put, "/api/orgs/org1/policy", token: root, json: body)
                XCTAssertEqual(answer.status, .badRequest, body)
                detail = answer.body["detail"] as? String ?? ""
                XCTAssertEqual(detail, expected, body)
            }
        }
    }

    func testTheCommandLineNamesOptions() throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        // A first start makes the ring, whose next key is younger than key_prepublication.
        let (server, _) = try broker.serve()
        server.terminate()
        server.waitUntilExit()
        var result = try broker.run(["keys", "rotate"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("or now with --force (tokens it signs"), result.stderr)
        XCTAssertFalse(result.stderr.contains("{"), result.stderr)

        XCTAssertEqual(try broker.run(["orgs", "add", "org1"]).status, 0)
        result = try broker.run(["orgs", "policy", "org1", "--access-lifetime", "10"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(
            result.stderr.contains("error: --access-lifetime must be between 60 and the broker's access_lifetime (3600) seconds"),
            result.stderr)
        let seventeen = (1...17).flatMap { ["--audience", "service\($0)"] }
        result = try broker.run(["orgs", "policy", "org1"] + seventeen)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("error: --audience must list 1 to 16 distinct names"), result.stderr)
    }

    func testTheCoreSpellsNoInterface() {
        let message: InterfaceMessage = "rotate now with \(.override("force")) or set \(.input("access_lifetime"))"
        XCTAssertEqual(message.description, "rotate now with force or set access_lifetime")
        XCTAssertEqual(message.spelled { "<\($0)>" }, #"rotate now with <override("force")> or set <input("access_lifetime")>"#)
        let error = BrokerError(.conflict, phrased: message)
        XCTAssertEqual(error.detail, message.description)
        XCTAssertEqual(BrokerError(.conflict, "plain").detail(spelling: { _ in "x" }), "plain")
    }
}
