import BrokerCore
import FakeGitHub
import Foundation
import GitHubClient
import Hummingbird
import HummingbirdTesting
import XCTest

/// Revocation reaches every kind of broker token, over real HTTP: a revoked token (`jti`), an
/// ended session (logout, sign out everywhere, one session, password reset) and a disabled
/// account are refused by every path that accepts a broker token — renewal at `/auth/refresh`,
/// the refresh grant, `membership_status`, introspection and the admin and membership API.
final class RevocationHTTPTests: XCTestCase {
    var github: FakeGitHub!
    var harness: ServerHarness!

    override func setUp() async throws {
        (github, harness) = try await ServerHarness.withFakeGitHub()
        let fixtures = AccountAdministration(
            store: harness.services.store, pool: harness.services.passwords, clock: harness.clock)
        try await fixtures.addUser("root", password: ServerHarness.password, globalRole: .admin, by: .operator)
        github.addUser(login: "carol", id: 30, token: "ghp_carol", organizations: ["SlideRuleEarth": .member])
    }

    override func tearDown() async throws {
        try await harness.shutdown()
        await github.stop()
    }

    /// Every kind of token carol can hold, each from its own login.
    struct Tokens {
        var generation2: String
        var generation1Access: String
        var generation1Refresh: String
        var brokerSession: String
    }

    static func signIn(_ client: any TestClientProtocol) async throws -> Tokens {
        let pat = try await client.api(.post, "/auth/github/pat", json: #"{"pat":"ghp_carol"}"#)
        XCTAssertEqual(pat.status, .ok)
        let bundle = try await client.api(
            .post, "/api/org_token_github/", json: #"{"org_name":"sliderule","access_token":"ghp_carol"}"#)
        XCTAssertEqual(bundle.status, .ok)
        let session = try await client.api(.post, "/api/session/github", json: #"{"access_token":"ghp_carol"}"#)
        XCTAssertEqual(session.status, .ok)
        return Tokens(
            generation2: try XCTUnwrap(pat.body["token"] as? String),
            generation1Access: try XCTUnwrap(bundle.body["access"] as? String),
            generation1Refresh: try XCTUnwrap(bundle.body["refresh"] as? String),
            brokerSession: try XCTUnwrap(session.body["token"] as? String))
    }

    static func renew(_ client: any TestClientProtocol, _ token: String) async throws -> APIAnswer {
        try await client.api(.get, "/auth/refresh", token: token)
    }

    static func membershipStatus(_ client: any TestClientProtocol, _ token: String) async throws -> APIAnswer {
        try await client.api(.get, "/api/membership_status/sliderule/", token: token)
    }

    static func introspect(_ client: any TestClientProtocol, _ token: String, as root: String) async throws -> Bool? {
        let answer = try await client.form("/oauth/introspect", "token=\(token)", token: root)
        XCTAssertEqual(answer.status, .ok)
        return answer.body["active"] as? Bool
    }

    /// Asserts that no path accepts any of `tokens` any more.
    static func assertRefusedEverywhere(
        _ client: any TestClientProtocol, _ tokens: Tokens, root: String, error: String,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let renewal = try await Self.renew(client, tokens.generation2)
        XCTAssertEqual(renewal.status, .unauthorized, "/auth/refresh: \(renewal.body)", file: file, line: line)
        XCTAssertEqual(renewal.body["status"] as? String, "error", file: file, line: line)
        for token in [tokens.generation2, tokens.generation1Access] {
            let status = try await Self.membershipStatus(client, token)
            XCTAssertEqual(status.status, .unauthorized, "membership_status: \(status.body)", file: file, line: line)
            XCTAssertEqual(status.error, error, file: file, line: line)
        }
        let me = try await client.api(.get, "/api/session", token: tokens.brokerSession)
        XCTAssertEqual(me.status, .unauthorized, "/api/session: \(me.body)", file: file, line: line)
        XCTAssertEqual(me.error, error, file: file, line: line)
        let memberships = try await client.api(.get, "/api/orgs/sliderule/members", token: tokens.brokerSession)
        XCTAssertEqual(memberships.status, .unauthorized, file: file, line: line)
        for token in [tokens.generation2, tokens.generation1Access, tokens.generation1Refresh, tokens.brokerSession] {
            let active = try await Self.introspect(client, token, as: root)
            XCTAssertEqual(active, false, "introspection", file: file, line: line)
        }
        let grant = try await client.form(
            "/oauth/token", "grant_type=refresh_token&refresh_token=\(tokens.generation1Refresh)")
        XCTAssertEqual(grant.status, .badRequest, "/oauth/token: \(grant.body)", file: file, line: line)
        XCTAssertEqual(grant.error, "invalid_grant", file: file, line: line)
    }

    func testEveryTokenIsGoodUntilRevoked() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let tokens = try await Self.signIn(client)
            let root = try await client.sessionToken("root")
            let verifier = harness.services.verifier
            // Every kind carries its session.
            let generation2 = try verifier.verify(tokens.generation2)
            XCTAssertNotNil(generation2.sessionID)
            XCTAssertNotNil(try verifier.verify(tokens.brokerSession, audience: harness.services.configuration.issuer).sessionID)
            harness.clock.advance(by: 60)
            let renewal = try await Self.renew(client, tokens.generation2)
            XCTAssertEqual(renewal.status, .ok)
            let renewed = try verifier.verify(try XCTUnwrap(renewal.body["token"] as? String))
            XCTAssertEqual(renewed.sessionID, generation2.sessionID, "a renewal keeps the sid")
            // (carol's membership comes from GitHub, not the store: `active` is false, but the token is good.)
            let generation2Status = try await Self.membershipStatus(client, tokens.generation2).status
            XCTAssertEqual(generation2Status, .ok)
            let generation1Status = try await Self.membershipStatus(client, tokens.generation1Access).status
            XCTAssertEqual(generation1Status, .ok)
            let sessionStatus = try await client.api(.get, "/api/session", token: tokens.brokerSession).status
            XCTAssertEqual(sessionStatus, .ok)
            for token in [tokens.generation2, tokens.generation1Access, tokens.generation1Refresh, tokens.brokerSession] {
                let active = try await Self.introspect(client, token, as: root)
                XCTAssertEqual(active, true)
            }
            // The admin sees one session of each kind.
            let sessions = try await client.api(.get, "/api/admin/users/carol/sessions", token: root)
            let listed = try XCTUnwrap(sessions.body["sessions"] as? [[String: Any]])
            XCTAssertEqual(Set(listed.compactMap { $0["kind"] as? String }), ["all_clusters", "organization", "broker"])
            XCTAssertEqual(listed.first { $0["kind"] as? String == "organization" }?["org"] as? String, "sliderule")
            XCTAssertTrue(listed.first { $0["kind"] as? String == "all_clusters" }?["org"] is NSNull)
        }
    }

    func testSignOutEverywhereReachesEveryKindOfToken() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let tokens = try await Self.signIn(client)
            let root = try await client.sessionToken("root")
            let revoked = try await client.api(.delete, "/api/admin/users/carol/sessions", token: root)
            XCTAssertEqual(revoked.status, .ok)
            XCTAssertEqual(revoked.body["revoked"] as? Int, 3)
            try await Self.assertRefusedEverywhere(client, tokens, root: root, error: "invalid_token")
            let refresh = try await client.refresh(tokens.generation1Refresh)
            XCTAssertEqual(refresh.status, .unauthorized)
            // The admin's own session was not touched.
            let rootStatus = try await client.api(.get, "/api/session", token: root).status
            XCTAssertEqual(rootStatus, .ok)
        }
    }

    func testPasswordResetEndsEverySession() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let tokens = try await Self.signIn(client)
            let root = try await client.sessionToken("root")
            let reset = try await client.api(
                .post, "/api/admin/users/carol/password", token: root, json: #"{"password":"a brand new passphrase 42"}"#)
            XCTAssertEqual(reset.status, .noContent)
            try await Self.assertRefusedEverywhere(client, tokens, root: root, error: "invalid_token")
        }
    }

    func testADisabledAccountIsRefusedEverywhere() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let tokens = try await Self.signIn(client)
            let root = try await client.sessionToken("root")
            let disabled = try await client.api(.post, "/api/admin/users/carol/disable", token: root).status
            XCTAssertEqual(disabled, .ok)
            try await Self.assertRefusedEverywhere(client, tokens, root: root, error: "account_disabled")
            let refresh = try await client.refresh(tokens.generation1Refresh)
            XCTAssertEqual(refresh.status, .unauthorized)
            XCTAssertEqual(refresh.error, "account_disabled")
        }
    }

    func testEndingOneGeneration2SessionEndsItsRenewals() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let tokens = try await Self.signIn(client)
            let root = try await client.sessionToken("root")
            let renewal = try await Self.renew(client, tokens.generation2)
            let renewed = try XCTUnwrap(renewal.body["token"] as? String)
            let sid = try XCTUnwrap(try harness.services.verifier.verify(tokens.generation2).sessionID)
            let ended = try await client.api(.delete, "/api/admin/users/carol/sessions/\(sid)", token: root)
            XCTAssertEqual(ended.status, .noContent)
            for token in [tokens.generation2, renewed] {
                let renewal = try await Self.renew(client, token)
                XCTAssertEqual(renewal.status, .unauthorized)
                let status = try await Self.membershipStatus(client, token).status
                XCTAssertEqual(status, .unauthorized)
                let active = try await Self.introspect(client, token, as: root)
                XCTAssertEqual(active, false)
            }
            // The other sessions go on.
            let generation1Status = try await Self.membershipStatus(client, tokens.generation1Access).status
            XCTAssertEqual(generation1Status, .ok)
            let sessionStatus = try await client.api(.get, "/api/session", token: tokens.brokerSession).status
            XCTAssertEqual(sessionStatus, .ok)
        }
    }

    func testARevokedGeneration2TokenNeitherRenewsNorVouches() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let tokens = try await Self.signIn(client)
            let root = try await client.sessionToken("root")
            // A renewal taken before the revocation dies with it: revoking a generation-2 token
            // ends its session (it is its own renewal credential).
            let renewal = try await Self.renew(client, tokens.generation2)
            let renewed = try XCTUnwrap(renewal.body["token"] as? String)
            let revoked = try await client.form("/oauth/revoke", "token=\(tokens.generation2)").status
            XCTAssertEqual(revoked, .ok)
            for token in [tokens.generation2, renewed] {
                let renewal = try await Self.renew(client, token)
                XCTAssertEqual(renewal.status, .unauthorized, "\(renewal.body)")
                let statusError = try await Self.membershipStatus(client, token).error
                XCTAssertEqual(statusError, "invalid_token")
                let active = try await Self.introspect(client, token, as: root)
                XCTAssertEqual(active, false)
            }
            let generation1Status = try await Self.membershipStatus(client, tokens.generation1Access).status
            XCTAssertEqual(generation1Status, .ok)
        }
    }

    func testARevokedGeneration1AccessTokenAndBrokerSessionTokenAreRefused() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let tokens = try await Self.signIn(client)
            let root = try await client.sessionToken("root")
            let revoked = try await client.form("/oauth/revoke", "token=\(tokens.generation1Access)").status
            XCTAssertEqual(revoked, .ok)
            let status = try await Self.membershipStatus(client, tokens.generation1Access)
            XCTAssertEqual(status.status, .unauthorized)
            XCTAssertEqual(status.error, "invalid_token")
            let active = try await Self.introspect(client, tokens.generation1Access, as: root)
            XCTAssertEqual(active, false)
            // Its refresh token is a separate credential, revoked separately.
            let refreshStatus = try await client.refresh(tokens.generation1Refresh).status
            XCTAssertEqual(refreshStatus, .ok)

            let sessionRevoked = try await client.form("/oauth/revoke", "token=\(tokens.brokerSession)").status
            XCTAssertEqual(sessionRevoked, .ok)
            let sessionError = try await client.api(.get, "/api/session", token: tokens.brokerSession).error
            XCTAssertEqual(sessionError, "invalid_token")
            let sessionActive = try await Self.introspect(client, tokens.brokerSession, as: root)
            XCTAssertEqual(sessionActive, false)
            let renewalStatus = try await Self.renew(client, tokens.generation2).status
            XCTAssertEqual(renewalStatus, .ok, "other sessions go on")
        }
    }
}
