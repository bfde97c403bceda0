import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest

/// The admin verbs of the command line, and the first admin of a fresh broker, as real processes.
final class AdminCLITests: XCTestCase {
    var broker: BrokerBinary!

    override func setUpWithError() throws {
        broker = try BrokerBinary.make()
    }

    override func tearDown() {
        broker.cleanUp()
    }

    static let password = "correct horse battery staple"

    func post(_ port: Int, _ path: String, token: String? = nil, json: String) async throws -> (Int, [String: Any]) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        request.httpBody = Data(json.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        let body = data.isEmpty ? [:] : (try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:])
        return ((response as! HTTPURLResponse).statusCode, body)
    }

    func testAdminFlagRoleAndMembershipRequestVerbs() async throws {
        var result = try broker.run(["users", "add", "root", "--admin", "--password-stdin"], stdin: Self.password + "\n")
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("created admin root"))
        try broker.run(["users", "add", "bob", "--password-stdin"], stdin: Self.password + "\n")
        try broker.run(["orgs", "add", "org1"])
        result = try broker.run(["users", "list"])
        XCTAssertTrue(result.stdout.contains("ROLE") && result.stdout.contains("admin"), result.stdout)

        let (server, port) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }
        let (status, session) = try await post(port, "/api/session", json: #"{"username":"bob","password":"\#(Self.password)"}"#)
        XCTAssertEqual(status, 200)
        let token = try XCTUnwrap(session["token"] as? String)
        let (requested, _) = try await post(port, "/api/orgs/org1/membership-requests", token: token, json: "{}")
        XCTAssertEqual(requested, 201)

        result = try broker.run(["members", "requests", "org1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("bob"), result.stdout)
        result = try broker.run(["members", "approve", "org1", "bob", "--role", "owner"])
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try broker.run(["members", "list", "org1"])
        XCTAssertTrue(result.stdout.contains("bob") && result.stdout.contains("owner"), result.stdout)
        result = try broker.run(["members", "deny", "org1", "bob"])
        XCTAssertEqual(result.status, 1, "nothing pending any more")
        XCTAssertTrue(result.stderr.contains("no pending request"), result.stderr)

        // The last admin cannot lose the role; a second one can take over.
        result = try broker.run(["users", "role", "root", "none"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("last active admin"), result.stderr)
        XCTAssertEqual(try broker.run(["users", "role", "bob", "admin"]).status, 0)
        XCTAssertEqual(try broker.run(["users", "role", "root", "none"]).status, 0)
        XCTAssertEqual(try broker.run(["users", "role", "root", "king"]).status, 1)
        XCTAssertEqual(try broker.run(["users", "delete", "root"]).status, 0)
        XCTAssertEqual(try broker.run(["users", "delete", "root"]).status, 1)
    }

    func testOrganizationPolicyAndDeletion() throws {
        XCTAssertEqual(try broker.run(["orgs", "add", "org1"]).status, 0)
        XCTAssertEqual(try broker.run(["orgs", "add", "org2"]).status, 0)
        var result = try broker.run(["orgs", "policy", "org1"])
        XCTAssertTrue(result.stdout.contains("live 3600 s, aud org1"), result.stdout)
        result = try broker.run(["orgs", "policy", "org1", "--access-lifetime", "600", "--audience", "org1", "--audience", "org1-lab"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("live 600 s, aud org1 org1-lab"), result.stdout)
        result = try broker.run(["orgs", "policy", "org1", "--access-lifetime", "999999"])
        XCTAssertEqual(result.status, 1)
        result = try broker.run(["orgs", "policy", "org2", "--audience", "org1-lab"])
        XCTAssertEqual(result.status, 1, "an audience belongs to one organization")
        result = try broker.run(["orgs", "policy", "org1", "--reset"])
        XCTAssertTrue(result.stdout.contains("live 3600 s, aud org1"), result.stdout)
        XCTAssertEqual(try broker.run(["orgs", "delete", "org1"]).status, 0)
        XCTAssertEqual(try broker.run(["orgs", "delete", "org1"]).status, 1)
        XCTAssertFalse(try broker.run(["orgs", "list"]).stdout.contains("org1"))
    }

    func testReservedNamesAndServiceAudiencesFromTheCLI() throws {
        XCTAssertEqual(try broker.run(["orgs", "add", "org1"]).status, 0)
        XCTAssertEqual(try broker.run(["orgs", "add", "org2", "--cluster", "cluster-two"]).status, 0)
        XCTAssertEqual(try broker.run(["orgs", "delete", "org2"]).status, 0)
        var result = try broker.run(["orgs", "policy", "org1", "--audience", "org1", "--audience", "cluster-two"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("reserved"), result.stderr)
        result = try broker.run(["orgs", "names"])
        XCTAssertTrue(result.stdout.contains("deleted organization org2"), result.stdout)
        XCTAssertEqual(try broker.run(["orgs", "release-name", "org1"]).status, 1, "org1 still exists")
        XCTAssertEqual(try broker.run(["orgs", "release-name", "cluster-two"]).status, 0)
        XCTAssertEqual(try broker.run(["orgs", "release-name", "cluster-two"]).status, 1)

        XCTAssertEqual(try broker.run(["orgs", "service-audience", "add", "monitor"]).status, 0)
        XCTAssertEqual(try broker.run(["orgs", "service-audience", "add", "org1"]).status, 1, "a cluster name")
        result = try broker.run(["orgs", "policy", "org1", "--audience", "org1", "--audience", "cluster-two", "--audience", "monitor"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try broker.run(["orgs", "add", "org3", "--cluster", "monitor"]).status, 1)
        XCTAssertEqual(try broker.run(["orgs", "service-audience", "remove", "monitor"]).status, 1, "org1's policy lists it")
        result = try broker.run(["orgs", "names"])
        XCTAssertTrue(result.stdout.contains("(every organization)"), result.stdout)
        XCTAssertTrue(result.stdout.contains("audience"), result.stdout)
    }

    func testBootstrapAdminFromTheEnvironmentOnFirstStartOnly() async throws {
        var environment = broker.environment
        environment["BROKER_BOOTSTRAP_ADMIN"] = "first"
        let refused = try BrokerBinary(workDirectory: broker.workDirectory, environment: environment).run(["serve", "--port", "0"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("no default password"), refused.stderr)

        environment["BROKER_BOOTSTRAP_ADMIN_PASSWORD"] = "first admin passphrase"
        let (server, port) = try BrokerBinary.startListening(
            ["serve", "--port", "0"], environment: environment, directory: broker.workDirectory)
        defer { server.terminate(); server.waitUntilExit() }
        let (status, session) = try await post(
            port, "/api/session", json: #"{"username":"first","password":"first admin passphrase"}"#)
        XCTAssertEqual(status, 200)
        XCTAssertEqual((session["user"] as? [String: Any])?["global_role"] as? String, "admin")
        let result = try broker.run(["users", "list"])
        XCTAssertTrue(result.stdout.contains("first"), result.stdout)
    }
}
