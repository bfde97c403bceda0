import BrokerCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// One account per name as a person reads it, over the admin API and the login routes on a
/// real loopback socket.
final class NameHTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        harness = try await ServerHarness.withAdmin()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    static func json(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    func testTheAdminAPICreatesNoSecondAccountForOneName() async throws {
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            let piled = String(repeating: "a" + String(repeating: "\u{301}", count: 60), count: 150)
            for (spelling, status, error) in [
                ("alice\u{200D}", HTTPResponse.Status.badRequest, "invalid_username"),
                ("alice\u{FE0F}", .badRequest, "invalid_username"),
                ("alice\u{E0061}", .badRequest, "invalid_username"),
                ("\u{0430}lice", .conflict, "already_exists"),
                ("ａｌｉｃｅ", .conflict, "already_exists"),
                ("Alice", .conflict, "already_exists"),
                ("a1ice", .conflict, "already_exists"),
                (piled, .badRequest, "invalid_username"),
            ] {
                let answer = try await client.api(
                    .post, "/api/admin/users", token: root, json: try Self.json(["username": spelling]))
                XCTAssertEqual(answer.status, status, "\(spelling.unicodeScalars.prefix(8).map { String($0.value, radix: 16) })")
                XCTAssertEqual(answer.error, error)
            }
            var answer = try await client.api(
                .post, "/api/admin/users", token: root,
                json: try Self.json(["username": "jose\u{301}", "password": ServerHarness.password]))
            XCTAssertEqual(answer.status, .created)
            XCTAssertEqual(
                (answer.body["username"] as? String)?.unicodeScalars.map(\.value), "jos\u{E9}".unicodeScalars.map(\.value),
                "stored in NFC")
            for spelling in ["jos\u{E9}", "JOS\u{C9}", "JOSE\u{301}"] {
                answer = try await client.api(.post, "/api/admin/users", token: root, json: try Self.json(["username": spelling]))
                XCTAssertEqual(answer.status, .conflict, spelling)
            }
            answer = try await client.api(.get, "/api/admin/users", token: root)
            let names = (answer.body["users"] as? [[String: Any]])?.compactMap { $0["username"] as? String }
            XCTAssertEqual(names?.count, 4, "alice, bob, root and josé: \(names ?? [])")
        }
    }

    /// The login looks up and throttles the name one way: a decomposed, upper-case `JOSÉ` is
    /// `josé`'s account and spends `josé`'s failures.
    func testTheThrottleAndTheStoreAgreeOnTheName() async throws {
        let harness = self.harness!
        try await harness.services.accounts.addUser("jos\u{E9}", password: ServerHarness.password, by: .operator)
        try await harness.withClient { client in
            var answer = try await client.api(
                .post, "/api/session", json: try Self.json(["username": "jose\u{301}", "password": ServerHarness.password]))
            XCTAssertEqual(answer.status, .ok, "the decomposed spelling signs josé in: \(answer.body)")
            for _ in 0..<harness.services.configuration.loginThrottleUserIP {
                answer = try await client.api(
                    .post, "/api/session", json: try Self.json(["username": "JOSE\u{301}", "password": "wrong password guess"]))
                XCTAssertEqual(answer.status, .unauthorized)
            }
            answer = try await client.api(
                .post, "/api/session", json: try Self.json(["username": "jos\u{E9}", "password": ServerHarness.password]))
            XCTAssertEqual(answer.status, .tooManyRequests, "the failures under another spelling count for josé")
        }
    }
}
