import BrokerCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// Over real HTTP: every audit line about a session names the account, the organization, the
/// session (the `sid` an operator finds in the admin API, never a token) and the client address,
/// so that after a refresh-token reuse an operator can tell whose session was revoked; and every
/// line keeps what `AuditAction.catalogue` (and so `docs/audit.md`) promises.
final class SessionAuditHTTPTests: XCTestCase {
    func events(_ harness: ServerHarness) throws -> [AuditEvent] {
        let text = try String(contentsOfFile: harness.services.configuration.auditLogPath, encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertTrue(object.keys.contains("session"), "every line has the session key: \(line)")
            return try XCTUnwrap(AuditEvent(jsonLine: Array(line.utf8)), String(line))
        }
    }

    /// The `sid` claim of a JWT.
    static func sessionID(of token: String) throws -> String {
        let payload = try XCTUnwrap(token.split(separator: ".").dropFirst().first)
        var base64 = payload.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        let claims = try XCTUnwrap(
            JSONSerialization.jsonObject(with: try XCTUnwrap(Data(base64Encoded: base64))) as? [String: Any])
        return try XCTUnwrap(claims["sid"] as? String)
    }

    /// The lines of HTTP requests keep the catalogue's promise, and none holds a secret.
    func assertLinesKeepTheCatalogue(
        _ harness: ServerHarness, secrets: [String], file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let events = try events(harness)
        let catalogue = Dictionary(uniqueKeysWithValues: AuditAction.catalogue.map { ($0.action, $0) })
        for event in events where event.requestID != nil {
            let entry = try XCTUnwrap(catalogue[event.action], "\(event.action) is catalogued", file: file, line: line)
            XCTAssertTrue(entry.admits(event), "\(event) breaks the catalogue's \(entry)", file: file, line: line)
            XCTAssertNotNil(event.clientIP, "\(event.action) names the client", file: file, line: line)
        }
        let written = try String(contentsOfFile: harness.services.configuration.auditLogPath, encoding: .utf8)
        for secret in secrets where !secret.isEmpty {
            XCTAssertFalse(written.contains(secret), "a token reached the audit log", file: file, line: line)
        }
    }

    func testReuseDetectionNamesWhoseSessionWasRevoked() async throws {
        let harness = try await ServerHarness.withAdmin()
        let (sid, secrets, listed) = try await harness.withClient { client in
            let first = try await client.orgTokens("alice", "org1")
            XCTAssertEqual(first.status, .ok)
            let second = try await client.refresh(first.refresh)
            XCTAssertEqual(second.status, .ok)
            let successor = try XCTUnwrap(second.body["refresh"] as? String)
            harness.clock.advance(by: 5)  // past the grace window
            let reused = try await client.refresh(first.refresh)
            XCTAssertEqual(reused.error, "refresh_token_reused")
            // The legitimate holder's next renewal is refused: the session is gone.
            let afterRevocation = try await client.refresh(successor)
            XCTAssertEqual(afterRevocation.error, "invalid_refresh_token")
            let sessions = try await client.api(.get, "/api/admin/users/alice/sessions", token: try await client.sessionToken("root"))
            let listed = (sessions.body["sessions"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            return (try Self.sessionID(of: first.access), [first.access, first.refresh, successor], listed)
        }
        XCTAssertEqual(listed, [sid], "the audit names the session as the admin API lists it")
        let events = try events(harness)

        let reuse = try XCTUnwrap(events.first { $0.action == .refreshReuseDetected })
        XCTAssertEqual(reuse.outcome, .denied, "docs/audit.md: a reused refresh token is denied")
        XCTAssertEqual(reuse.actor, "alice")
        XCTAssertEqual(reuse.organization, "org1")
        XCTAssertEqual(reuse.session, sid)
        XCTAssertEqual(reuse.clientIP, "127.0.0.1")
        XCTAssertEqual(reuse.reason, "refresh_token_reused")
        XCTAssertEqual(reuse.target, AuditEvent.tokenReference(secrets[1]), "the token is named by a hash")

        let refreshes = events.filter { $0.action == .tokenRefresh }
        XCTAssertEqual(refreshes.map(\.outcome), [.success, .failure])
        for refresh in refreshes {
            XCTAssertEqual([refresh.actor, refresh.organization, refresh.session], ["alice", "org1", sid], "\(refresh)")
        }
        let login = try XCTUnwrap(events.first { $0.action == .loginPassword })
        XCTAssertEqual([login.actor, login.organization, login.session], ["alice", "org1", sid])
        XCTAssertNotNil(events.first { $0.action == .sessionLogin && $0.actor == "root" }?.session)
        try assertLinesKeepTheCatalogue(harness, secrets: secrets)
        try await harness.shutdown()
    }

    func testSignOutsAndRevocationsNameTheSession() async throws {
        let harness = try await ServerHarness.withAdmin()
        let (sessions, secrets) = try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            var sessions: [String] = []
            var secrets = [root]

            let loggedOut = try await client.orgTokens("alice", "org1")
            let blacklist = try await client.api(.post, "/api/token/blacklist/", json: #"{"refresh":"\#(loggedOut.refresh)"}"#)
            XCTAssertEqual(blacklist.status, .ok)

            let revokedByHolder = try await client.orgTokens("alice", "org1")
            let revocation = try await client.form("/oauth/revoke", "token=\(revokedByHolder.refresh)")
            XCTAssertEqual(revocation.status, .ok)

            let revokedByAdmin = try await client.orgTokens("alice", "org1")
            let adminRevocation = try await client.api(
                .delete, "/api/admin/users/alice/sessions/\(try Self.sessionID(of: revokedByAdmin.access))", token: root)
            XCTAssertEqual(adminRevocation.status, .noContent)

            let everywhere = try await client.api(.delete, "/api/admin/users/alice/sessions", token: root)
            XCTAssertEqual(everywhere.status, .ok)

            for tokens in [loggedOut, revokedByHolder, revokedByAdmin] {
                sessions.append(try Self.sessionID(of: tokens.access))
                secrets += [tokens.access, tokens.refresh]
            }
            return (sessions, secrets)
        }
        let events = try events(harness)

        let logout = try XCTUnwrap(events.first { $0.action == .sessionRevoke && $0.actor == "alice" })
        XCTAssertEqual(logout.outcome, .success)
        XCTAssertEqual([logout.organization, logout.session, logout.clientIP, logout.reason], ["org1", sessions[0], "127.0.0.1", "logout"])

        let revoke = try XCTUnwrap(events.first { $0.action == .tokenRevoke })
        XCTAssertEqual(revoke.outcome, .success)
        XCTAssertEqual([revoke.actor, revoke.organization, revoke.session, revoke.clientIP], ["alice", "org1", sessions[1], "127.0.0.1"])

        let byAdmin = try XCTUnwrap(events.first { $0.action == .sessionRevoke && $0.actor == "root" })
        XCTAssertEqual(byAdmin.outcome, .success)
        XCTAssertEqual(
            [byAdmin.target, byAdmin.organization, byAdmin.session, byAdmin.clientIP], ["alice", "org1", sessions[2], "127.0.0.1"],
            "the admin acted on alice's session")

        let all = try XCTUnwrap(events.first { $0.action == .sessionRevokeAll })
        XCTAssertEqual([all.actor, all.target, all.clientIP], ["root", "alice", "127.0.0.1"])
        try assertLinesKeepTheCatalogue(harness, secrets: secrets)
        try await harness.shutdown()
    }
}
