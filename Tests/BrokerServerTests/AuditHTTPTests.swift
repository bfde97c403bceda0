import BrokerCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// Every audited action over real HTTP: one JSON line each, with the request's id and client
/// IP, never a secret; and what `closed` and `open` do when the log cannot be written.
final class AuditHTTPTests: XCTestCase {
    func lines(_ harness: ServerHarness) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: harness.services.configuration.auditLogPath, encoding: .utf8)
        return try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testEachActionWritesOneLineWithoutSecrets() async throws {
        let harness = try await ServerHarness.withAdmin()
        try await harness.services.accounts.addMember(organization: "org1", username: "alice", role: .owner, by: .operator)
        let secrets = try await harness.withClient { client in
            var secrets: [String] = [ServerHarness.password]
            let tokens = try await client.orgTokens("alice", "org1")
            secrets += [tokens.access, tokens.refresh]
            _ = try await client.api(
                .post, "/api/org_token/", json: #"{"username":"alice","password":"wrong password 1","org_name":"org1"}"#,
                headers: [HTTPField.Name("X-Request-ID")!: "req-42"])
            secrets.append("wrong password 1")
            let second = try await client.refresh(tokens.refresh)
            secrets.append(second.body["refresh"] as? String ?? "")
            harness.clock.advance(by: 5)
            let reused = try await client.refresh(tokens.refresh)
            XCTAssertEqual(reused.error, "refresh_token_reused")

            let root = try await client.sessionToken("root")
            let bob = try await client.sessionToken("bob")
            secrets += [root, bob]
            _ = try await client.api(.post, "/api/orgs/org1/membership-requests", token: bob)
            _ = try await client.api(.post, "/api/orgs/org1/membership-requests/bob/approve", token: bob)
            _ = try await client.api(.post, "/api/orgs/org1/membership-requests/bob/approve", token: try await client.sessionToken("alice"))
            _ = try await client.api(
                .post, "/api/admin/users", token: root, json: #"{"username":"dave","password":"dave's passphrase"}"#)
            secrets.append("dave's passphrase")
            harness.clock.advance(by: 601)
            _ = try await client.api(.post, "/api/admin/keys/rotate", token: root)
            let fresh = try await client.orgTokens("alice", "org1")
            secrets += [fresh.access, fresh.refresh]
            _ = try await client.form("/oauth/introspect", "token=\(fresh.access)", token: root)
            _ = try await client.form("/oauth/revoke", "token=\(fresh.refresh)")
            return secrets
        }
        let lines = try lines(harness)
        // Lines of the HTTP requests only (the fixtures are created without auditing).
        func find(_ action: String, _ outcome: String) -> [String: Any]? {
            lines.first { $0["action"] as? String == action && $0["outcome"] as? String == outcome && $0["client_ip"] is String }
        }
        let login = try XCTUnwrap(find("login.password", "success"))
        XCTAssertEqual(login["actor"] as? String, "alice")
        XCTAssertEqual(login["org"] as? String, "org1")
        XCTAssertEqual(login["client_ip"] as? String, "127.0.0.1")
        XCTAssertTrue((login["target"] as? String ?? "").hasPrefix("jti:"))
        XCTAssertNotNil(login["request_id"] as? String)
        let failed = try XCTUnwrap(find("login.password", "failure"))
        XCTAssertEqual(failed["reason"] as? String, "invalid_credentials")
        XCTAssertEqual(failed["request_id"] as? String, "req-42", "the caller's X-Request-ID names the line")
        XCTAssertNotNil(find("token.refresh", "success"))
        let reuse = try XCTUnwrap(find("refresh.reuse_detected", "denied"))
        XCTAssertTrue((reuse["target"] as? String ?? "").hasPrefix("sha256:"), "a token is named by a hash")
        XCTAssertEqual(find("session.login", "success")?["reason"] as? String, "role=admin")
        XCTAssertEqual(find("membership.request", "success")?["actor"] as? String, "bob")
        XCTAssertEqual(find("membership.approve", "denied")?["actor"] as? String, "bob")
        XCTAssertEqual(find("membership.approve", "success")?["actor"] as? String, "alice")
        XCTAssertEqual(find("user.create", "success")?["target"] as? String, "dave")
        XCTAssertEqual(find("key.rotate", "success")?["actor"] as? String, "root")
        XCTAssertEqual(find("token.revoke", "success")?["reason"] as? String, "refresh_token session_ended")
        XCTAssertEqual(find("introspect", "success")?["reason"] as? String, "active")

        let text = try String(contentsOfFile: harness.services.configuration.auditLogPath, encoding: .utf8)
        for secret in secrets where !secret.isEmpty {
            XCTAssertFalse(text.contains(secret), "a secret reached the audit log")
        }
        try await harness.shutdown()
    }

    func testClosedModeRefusesWhatItCannotRecord() async throws {
        let harness = try await ServerHarness.withAdmin { configuration in
            configuration.auditLog = "/dev/full"
            configuration.auditFailureMode = .failClosed
        }
        try await harness.withClient { client in
            var answer = try await client.api(
                .post, "/api/org_token/",
                json: #"{"username":"alice","password":"\#(ServerHarness.password)","org_name":"org1"}"#)
            XCTAssertEqual(answer.status, .serviceUnavailable)
            XCTAssertEqual(answer.error, "audit_unavailable")
            XCTAssertNil(answer.body["access"], "no token leaves without its audit line")
            answer = try await client.api(
                .post, "/api/session", json: #"{"username":"root","password":"\#(ServerHarness.password)"}"#)
            XCTAssertEqual(answer.error, "audit_unavailable")
        }
        // An administrative change that cannot be recorded is rolled back.
        do {
            try await harness.services.accounts.addUser("mallory", password: ServerHarness.password, by: .operator)
            XCTFail("the change must be refused")
        } catch let error as BrokerError {
            XCTAssertEqual(error.code, .auditUnavailable)
        }
        let users = try await harness.services.accounts.users().map(\.username)
        XCTAssertFalse(users.contains("mallory"))
        try await harness.shutdown()
    }

    func testOpenModeCarriesOnWithAnErrorLine() async throws {
        let harness = try await ServerHarness.withAdmin { configuration in
            configuration.auditLog = "/dev/full"
            configuration.auditFailureMode = .failOpen
        }
        try await harness.withClient { client in
            let tokens = try await client.orgTokens("alice", "org1")
            XCTAssertEqual(tokens.status, .ok)
        }
        try await harness.services.accounts.addUser("mallory", password: ServerHarness.password, by: .operator)
        XCTAssertTrue(harness.logs.all.contains { $0.hasPrefix("error") && $0.contains("login.password") })
        try await harness.shutdown()
    }
}
