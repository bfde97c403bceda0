import BrokerCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// The database down: every route that needs it answers 503 with `Retry-After` in its family's
/// error shape; the key publication routes and `/livez` answer from memory; `/readyz` says
/// not ready; and once the database is back the same server serves again, without a restart.
final class StoreOutageHTTPTests: XCTestCase {
    private var harness: ServerHarness!
    private var store: OutageStore!

    override func setUp() async throws {
        var outage: OutageStore?
        harness = try await ServerHarness.make(githubAPI: RefusingGitHub()) { _ in } wrapStore: { base in
            let store = OutageStore(base)
            outage = store
            return store
        }
        store = try XCTUnwrap(outage)
        let fixtures = AccountAdministration(store: harness.services.store, pool: harness.services.passwords, clock: harness.clock)
        try await fixtures.addUser("root", password: ServerHarness.password, globalRole: .admin, by: .operator)
    }

    override func tearDown() async throws {
        store.setDown(false)
        try await harness.shutdown()
    }

    /// 503, `Retry-After` in whole seconds, the JSON error shape of the family, the stable code.
    private static func assertUnavailable(
        _ answer: APIAnswer, code: String, generation2: Bool = false, _ what: String, line: UInt = #line
    ) {
        XCTAssertEqual(answer.status, .serviceUnavailable, "\(what): \(answer.body)", line: line)
        XCTAssertEqual(answer.headers[.retryAfter], String(StoreError.unavailableRetryAfter), what, line: line)
        XCTAssertEqual(answer.error, code, what, line: line)
        if generation2 {
            XCTAssertEqual(answer.body["status"] as? String, "error", what, line: line)
            XCTAssertNotNil(answer.body["detail"] as? String, what, line: line)
        } else if code == "temporarily_unavailable" {
            XCTAssertNotNil(answer.body["error_description"] as? String, what, line: line)
        } else {
            XCTAssertEqual(Set(answer.body.keys), ["error", "detail"], what, line: line)
        }
        // The engine's own message (hosts, ports) stays in the server log.
        XCTAssertFalse("\(answer.body)".contains("connection refused"), what, line: line)
    }

    func testEveryFamilyAnswers503WhileTheStoreIsDownAndServesAgainAfterwards() async throws {
        let store = self.store!
        try await harness.withClient { client in
            // Before the outage: a bundle, a session token, an admin's session token.
            let bundle = try await client.orgTokens("alice", "org1")
            XCTAssertEqual(bundle.status, .ok)
            let rootSession = try await client.sessionToken("root")

            store.setDown(true)
            // Generation 1.
            let login = try await client.api(
                .post, "/api/org_token/",
                json: #"{"username":"alice","password":"\#(ServerHarness.password)","org_name":"org1"}"#)
            Self.assertUnavailable(login, code: "store_unavailable", "generation-1 login")
            Self.assertUnavailable(try await client.refresh(bundle.refresh), code: "store_unavailable", "generation-1 refresh")
            Self.assertUnavailable(
                try await client.api(.get, "/api/membership_status/org1/", token: bundle.access), code: "store_unavailable",
                "membership status")
            // Generation 2.
            Self.assertUnavailable(
                try await client.api(.get, "/auth/refresh", token: bundle.access), code: "store_unavailable", generation2: true,
                "generation-2 renewal")
            // OAuth: RFC 6749's code for it, with Retry-After.
            Self.assertUnavailable(
                try await client.form("/oauth/token", "grant_type=refresh_token&refresh_token=\(bundle.refresh)"),
                code: "temporarily_unavailable", "OAuth refresh grant")
            // Sessions, membership and admin API.
            Self.assertUnavailable(
                try await client.api(
                    .post, "/api/session", json: #"{"username":"root","password":"\#(ServerHarness.password)"}"#),
                code: "store_unavailable", "session sign-in")
            Self.assertUnavailable(
                try await client.api(.get, "/api/session", token: rootSession), code: "store_unavailable", "session check")
            Self.assertUnavailable(
                try await client.api(.get, "/api/admin/users", token: rootSession), code: "store_unavailable", "admin API")
            Self.assertUnavailable(
                try await client.api(.get, "/api/orgs/org1/members", token: rootSession), code: "store_unavailable",
                "membership API")

            // From memory: the keys, discovery, liveness.
            for path in ["/.well-known/jwks.json", "/auth/pem", "/.well-known/openid-configuration", "/livez"] {
                let status = try await client.execute(uri: path, method: .get) { $0.status }
                XCTAssertEqual(status, .ok, "\(path) during the outage")
            }
            // Not ready (and the compatibility check agrees).
            let notReady = try await client.api(.get, "/readyz")
            XCTAssertEqual(notReady.status, .serviceUnavailable)
            XCTAssertNotNil(notReady.headers[.retryAfter])
            let unhealthy = try await client.api(.get, "/healthz")
            XCTAssertEqual(unhealthy.status, .serviceUnavailable)

            // Back: the same server, the same tokens (the refused renewal used nothing).
            store.setDown(false)
            let ready = try await client.api(.get, "/readyz")
            XCTAssertEqual(ready.status, .ok)
            let renewed = try await client.refresh(bundle.refresh)
            XCTAssertEqual(renewed.status, .ok, "the refresh token after the outage: \(renewed.body)")
            let loginAfter = try await client.orgTokens("alice", "org1")
            XCTAssertEqual(loginAfter.status, .ok)
            let users = try await client.api(.get, "/api/admin/users", token: rootSession)
            XCTAssertEqual(users.status, .ok)
        }
    }

    /// A refused login is audited with the code it was answered with.
    func testALoginRefusedByTheOutageIsAuditedAsStoreUnavailable() async throws {
        let store = self.store!
        try await harness.withClient { client in
            store.setDown(true)
            let login = try await client.api(
                .post, "/api/org_token/",
                json: #"{"username":"alice","password":"\#(ServerHarness.password)","org_name":"org1"}"#)
            XCTAssertEqual(login.status, .serviceUnavailable)
        }
        store.setDown(false)
        let lines = try String(contentsOfFile: harness.services.configuration.auditLogPath, encoding: .utf8)
            .split(separator: "\n").compactMap { AuditEvent(jsonLine: Array($0.utf8)) }
        let refusal = try XCTUnwrap(lines.last { $0.action == .loginPassword })
        XCTAssertEqual(refusal.outcome, .failure)
        XCTAssertEqual(refusal.reason, "store_unavailable")
    }
}
