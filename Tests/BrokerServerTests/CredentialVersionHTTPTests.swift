import BrokerCore
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

/// What a password reset, "sign out everywhere" and disabling an account end, over real HTTP:
/// every session started before (broker session tokens included), and a login that was
/// checking the old password while the change committed. Re-enabling an account revives
/// nothing. The race is made deterministic by ``InterposingStore``: the change commits right
/// after the login has read the account and before it records its session.
final class CredentialVersionHTTPTests: XCTestCase {
    var harness: ServerHarness!
    var store: InterposingStore!

    static let newPassword = "a brand new passphrase 42"

    override func setUp() async throws {
        var interposing: InterposingStore?
        harness = try await ServerHarness.make(wrapStore: { base in
            let store = InterposingStore(base)
            interposing = store
            return store
        })
        store = try XCTUnwrap(interposing)
        let fixtures = AccountAdministration(
            store: harness.services.store, pool: harness.services.passwords, clock: harness.clock)
        try await fixtures.addUser("root", password: ServerHarness.password, globalRole: .admin, by: .operator)
        try await fixtures.addUser("dana", password: ServerHarness.password, globalRole: .admin, by: .operator)
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    /// The sessions of `username` that are not marked revoked, as an admin lists them.
    static func unrevokedSessions(
        _ client: any TestClientProtocol, of username: String, root: String
    ) async throws -> [[String: Any]] {
        let answer = try await client.api(.get, "/api/admin/users/\(username)/sessions", token: root)
        XCTAssertEqual(answer.status, .ok)
        return try XCTUnwrap(answer.body["sessions"] as? [[String: Any]]).filter { $0["revoked_at"] is NSNull }
    }

    static func signIn(_ client: any TestClientProtocol, _ username: String, password: String) async throws -> APIAnswer {
        try await client.api(.post, "/api/session", json: #"{"username":"\#(username)","password":"\#(password)"}"#)
    }

    func testAPasswordResetEndsAdminSessionsAndTheLoginCheckingTheOldPassword() async throws {
        let harness = self.harness!
        let store = self.store!
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            let before = try await client.sessionToken("dana")
            let reset = StepRecord<Bool>()
            store.afterNextTransaction {
                try await harness.services.accounts.setPassword("dana", password: Self.newPassword, by: .operator)
                reset.record(true)
            }
            // The old password was right when the login read the account, and is not by the time
            // its session would start.
            let racing = try await Self.signIn(client, "dana", password: ServerHarness.password)
            XCTAssertEqual(reset.value, true, "the reset committed during the login")
            XCTAssertEqual(racing.status, .unauthorized, "\(racing.body)")
            XCTAssertEqual(racing.error, "credentials_changed")
            XCTAssertNil(racing.body["token"])
            let left = try await Self.unrevokedSessions(client, of: "dana", root: root)
            XCTAssertEqual(left.count, 0, "no session was started: \(left)")
            // The admin session token from before the reset is refused everywhere it is presented.
            let me = try await client.api(.get, "/api/session", token: before)
            XCTAssertEqual(me.status, .unauthorized)
            XCTAssertEqual(me.error, "invalid_token")
            let users = try await client.api(.get, "/api/admin/users", token: before).status
            XCTAssertEqual(users, .unauthorized)
            let active = try await client.form("/oauth/introspect", "token=\(before)", token: root)
            XCTAssertEqual(active.body["active"] as? Bool, false)
            // The new password opens a new session.
            let fresh = try await Self.signIn(client, "dana", password: Self.newPassword)
            XCTAssertEqual(fresh.status, .ok)
        }
    }

    func testAGenerationOneLoginThatRacedAPasswordResetGetsNoRefreshToken() async throws {
        let harness = self.harness!
        let store = self.store!
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            let earlier = try await client.orgTokens("alice", "org1")
            XCTAssertEqual(earlier.status, .ok)
            store.afterNextTransaction {
                try await harness.services.accounts.setPassword("alice", password: Self.newPassword, by: .operator)
            }
            let racing = try await client.api(
                .post, "/api/org_token/",
                json: #"{"username":"alice","password":"\#(ServerHarness.password)","org_name":"org1"}"#)
            XCTAssertEqual(racing.status, .unauthorized, "\(racing.body)")
            XCTAssertEqual(racing.error, "credentials_changed")
            XCTAssertNil(racing.body["refresh"])
            XCTAssertNil(racing.body["access"])
            let left = try await Self.unrevokedSessions(client, of: "alice", root: root)
            XCTAssertEqual(left.count, 0, "no session was started: \(left)")
            let refresh = try await client.refresh(earlier.refresh)
            XCTAssertEqual(refresh.status, .unauthorized)
            let status = try await client.api(.get, "/api/membership_status/org1/", token: earlier.access).status
            XCTAssertEqual(status, .unauthorized)
        }
    }

    func testSignOutEverywhereEndsAdminSessionsAndALoginUnderWay() async throws {
        let harness = self.harness!
        let store = self.store!
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            let before = try await client.sessionToken("dana")
            let revoked = StepRecord<Int>()
            store.afterNextTransaction {
                revoked.record(try await harness.services.accounts.revokeAllSessions(of: "dana", by: .operator))
            }
            let racing = try await Self.signIn(client, "dana", password: ServerHarness.password)
            XCTAssertEqual(revoked.value, 1, "the session from before, and nothing else, was live")
            XCTAssertEqual(racing.status, .unauthorized, "\(racing.body)")
            XCTAssertEqual(racing.error, "credentials_changed")
            let me = try await client.api(.get, "/api/session", token: before)
            XCTAssertEqual(me.status, .unauthorized)
            XCTAssertEqual(me.error, "invalid_token")
            let left = try await Self.unrevokedSessions(client, of: "dana", root: root)
            XCTAssertEqual(left.count, 0, "\(left)")

            // Over HTTP: what the answer counts is what was live, and it all ends.
            let again = try await client.sessionToken("dana")
            let answer = try await client.api(.delete, "/api/admin/users/dana/sessions", token: root)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(answer.body["revoked"] as? Int, 1)
            let status = try await client.api(.get, "/api/session", token: again).status
            XCTAssertEqual(status, .unauthorized)
            let rootStatus = try await client.api(.get, "/api/session", token: root).status
            XCTAssertEqual(rootStatus, .ok, "another account's session goes on")
        }
    }

    func testSignOutEverywhereCountsTheSessionsItEnded() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            _ = try await client.sessionToken("dana")
            _ = try await client.orgTokens("alice", "org1")
            // dana's first session expires (admin_session_lifetime); she signs in twice more.
            harness.clock.advance(by: TimeInterval(harness.services.configuration.adminSessionLifetime + 1))
            let second = try await client.sessionToken("dana")
            let third = try await client.sessionToken("dana")
            let root = try await client.sessionToken("root")
            let answer = try await client.api(.delete, "/api/admin/users/dana/sessions", token: root)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(answer.body["revoked"] as? Int, 2, "the expired session had ended already")
            for token in [second, third] {
                let status = try await client.api(.get, "/api/session", token: token).status
                XCTAssertEqual(status, .unauthorized)
            }
            let none = try await client.api(.delete, "/api/admin/users/dana/sessions", token: root)
            XCTAssertEqual(none.body["revoked"] as? Int, 0, "nothing was left to end")
        }
    }

    func testReEnablingAnAccountRevivesNothingIssuedBefore() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            let admin = try await client.sessionToken("dana")
            let member = try await client.sessionToken("alice")
            let bundle = try await client.orgTokens("alice", "org1")
            XCTAssertEqual(bundle.status, .ok)
            for username in ["dana", "alice"] {
                let disabled = try await client.api(.post, "/api/admin/users/\(username)/disable", token: root).status
                XCTAssertEqual(disabled, .ok)
            }
            let whileDisabled = try await client.api(.get, "/api/session", token: admin)
            XCTAssertEqual(whileDisabled.error, "account_disabled")
            for username in ["dana", "alice"] {
                let enabled = try await client.api(.post, "/api/admin/users/\(username)/enable", token: root).status
                XCTAssertEqual(enabled, .ok)
            }
            for token in [admin, member] {
                let me = try await client.api(.get, "/api/session", token: token)
                XCTAssertEqual(me.status, .unauthorized, "\(me.body)")
                XCTAssertEqual(me.error, "invalid_token")
                let active = try await client.form("/oauth/introspect", "token=\(token)", token: root)
                XCTAssertEqual(active.body["active"] as? Bool, false)
            }
            let users = try await client.api(.get, "/api/admin/users", token: admin).status
            XCTAssertEqual(users, .unauthorized)
            let refresh = try await client.refresh(bundle.refresh)
            XCTAssertEqual(refresh.status, .unauthorized, "\(refresh.body)")
            XCTAssertEqual(refresh.error, "invalid_refresh_token")
            let grant = try await client.form("/oauth/token", "grant_type=refresh_token&refresh_token=\(bundle.refresh)")
            XCTAssertEqual(grant.error, "invalid_grant")
            let status = try await client.api(.get, "/api/membership_status/org1/", token: bundle.access).status
            XCTAssertEqual(status, .unauthorized)
            // The sessions are listed as ended, and new logins work.
            let left = try await Self.unrevokedSessions(client, of: "alice", root: root)
            XCTAssertEqual(left.count, 0, "\(left)")
            let fresh = try await client.orgTokens("alice", "org1")
            XCTAssertEqual(fresh.status, .ok)
            let freshRefresh = try await client.refresh(fresh.refresh).status
            XCTAssertEqual(freshRefresh, .ok)
            _ = try await client.sessionToken("dana")
        }
    }
}
