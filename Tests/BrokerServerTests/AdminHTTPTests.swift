import BrokerCore
import BrokerCrypto
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

/// The global admin API, revocation and introspection over a real loopback socket.
final class AdminHTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        harness = try await ServerHarness.withAdmin()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    func testOnlyGlobalAdminsUseTheAdminRoutes() async throws {
        let harness = self.harness!
        try await harness.services.accounts.addMember(organization: "org1", username: "alice", role: .admin, by: .operator)
        try await harness.withClient { client in
            let alice = try await client.sessionToken("alice")
            for (method, path) in [
                (HTTPRequest.Method.get, "/api/admin/users"), (.get, "/api/admin/orgs"), (.get, "/api/admin/keys"),
                (.post, "/api/admin/keys/rotate"), (.get, "/api/admin/users/bob/sessions"),
                (.delete, "/api/admin/users/bob"), (.post, "/api/admin/users/bob/disable"),
                (.get, "/api/admin/audience-names"), (.delete, "/api/admin/audience-names/org1"),
                (.put, "/api/admin/service-audiences/monitor"), (.delete, "/api/admin/service-audiences/monitor"),
            ] {
                let answer = try await client.api(method, path, token: alice)
                XCTAssertEqual(answer.status, .forbidden, "\(method) \(path): an org admin is not a broker admin")
                XCTAssertEqual(answer.error, "forbidden")
                let anonymous = try await client.api(method, path)
                XCTAssertEqual(anonymous.status, .unauthorized, "\(method) \(path)")
            }
        }
    }

    func testUsersCreateListPageDisableResetDelete() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            var answer = try await client.api(
                .post, "/api/admin/users", token: root, json: #"{"username":"dave","password":"\#(ServerHarness.password)"}"#)
            XCTAssertEqual(answer.status, .created)
            XCTAssertEqual(answer.body["username"] as? String, "dave")
            XCTAssertEqual(answer.body["has_password"] as? Bool, true)
            XCTAssertNil(answer.body["password"], "never echoed")
            answer = try await client.api(
                .post, "/api/admin/users", token: root, json: #"{"username":"dave","password":"\#(ServerHarness.password)"}"#)
            XCTAssertEqual(answer.status, .conflict)
            answer = try await client.api(.post, "/api/admin/users", token: root, json: #"{"username":"eve","password":"short"}"#)
            XCTAssertEqual(answer.error, "invalid_password")
            answer = try await client.api(.post, "/api/admin/users", token: root, json: #"{"username":"bad name"}"#)
            XCTAssertEqual(answer.error, "invalid_username")

            // Paging: alice, bob, root, dave in id order, two at a time.
            var names: [String] = []
            var cursor: String? = "0"
            while let after = cursor {
                answer = try await client.api(.get, "/api/admin/users?limit=2&after=\(after)", token: root)
                XCTAssertEqual(answer.status, .ok)
                let users = try XCTUnwrap(answer.body["users"] as? [[String: Any]])
                XCTAssertLessThanOrEqual(users.count, 2)
                names += users.compactMap { $0["username"] as? String }
                cursor = answer.body["next"] as? String
            }
            XCTAssertEqual(names, ["alice", "bob", "root", "dave"])
            answer = try await client.api(.get, "/api/admin/users?limit=0", token: root)
            XCTAssertEqual(answer.status, .badRequest)

            // Disable: sign-in, refresh and session tokens stop at once.
            let dave = try await client.sessionToken("dave")
            answer = try await client.api(.post, "/api/admin/users/dave/disable", token: root)
            XCTAssertEqual(answer.body["active"] as? Bool, false)
            answer = try await client.api(.get, "/api/session", token: dave)
            XCTAssertEqual(answer.status, .unauthorized)
            XCTAssertEqual(answer.error, "account_disabled")
            answer = try await client.api(.post, "/api/admin/users/dave/enable", token: root)
            XCTAssertEqual(answer.body["active"] as? Bool, true)

            // A password reset signs the account out everywhere.
            let tokens = try await client.orgTokens("alice", "org1")
            answer = try await client.api(
                .post, "/api/admin/users/alice/password", token: root, json: #"{"password":"a brand new passphrase"}"#)
            XCTAssertEqual(answer.status, .noContent)
            let refreshed = try await client.refresh(tokens.refresh)
            XCTAssertEqual(refreshed.status, .unauthorized)
            _ = try await client.sessionToken("alice", password: "a brand new passphrase")

            answer = try await client.api(.delete, "/api/admin/users/dave", token: root)
            XCTAssertEqual(answer.status, .noContent)
            answer = try await client.api(.get, "/api/admin/users/dave", token: root)
            XCTAssertEqual(answer.status, .notFound)
            answer = try await client.api(.delete, "/api/admin/users/dave", token: root)
            XCTAssertEqual(answer.status, .notFound)
        }
        XCTAssertFalse(harness.logs.all.contains { $0.contains("a brand new passphrase") || $0.contains(ServerHarness.password) })
    }

    func testTheLastAdminStays() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            var answer = try await client.api(.delete, "/api/admin/users/root", token: root)
            XCTAssertEqual(answer.status, .conflict)
            answer = try await client.api(.put, "/api/admin/users/root/role", token: root, json: #"{"global_role":null}"#)
            XCTAssertEqual(answer.status, .conflict)
            answer = try await client.api(.post, "/api/admin/users/root/disable", token: root)
            XCTAssertEqual(answer.status, .conflict)
            // With a second admin, the first may go; its session token stops working at once.
            answer = try await client.api(.put, "/api/admin/users/bob/role", token: root, json: #"{"global_role":"admin"}"#)
            XCTAssertEqual(answer.body["global_role"] as? String, "admin")
            answer = try await client.api(.put, "/api/admin/users/root/role", token: root, json: #"{"global_role":null}"#)
            XCTAssertEqual(answer.status, .ok)
            answer = try await client.api(.get, "/api/admin/users", token: root)
            XCTAssertEqual(answer.status, .forbidden, "the role is read from the store on every request")
        }
    }

    func testSessionsListAndRevoke() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            let first = try await client.orgTokens("alice", "org1")
            let second = try await client.orgTokens("alice", "org1")
            var answer = try await client.api(.get, "/api/admin/users/alice/sessions", token: root)
            let sessions = try XCTUnwrap(answer.body["sessions"] as? [[String: Any]])
            XCTAssertEqual(sessions.count, 2)
            XCTAssertEqual(sessions.first?["org"] as? String, "org1")
            XCTAssertEqual(sessions.first?["amr"] as? [String], ["pwd"])
            let firstSession = try harness.services.verifier.verify(first.access, audience: "org1").sessionID
            XCTAssertNotNil(firstSession)

            answer = try await client.api(.delete, "/api/admin/users/alice/sessions/\(firstSession!)", token: root)
            XCTAssertEqual(answer.status, .noContent)
            let firstRefresh = try await client.refresh(first.refresh)
            XCTAssertEqual(firstRefresh.status, .unauthorized)
            let secondRefresh = try await client.refresh(second.refresh)
            XCTAssertEqual(secondRefresh.status, .ok)
            answer = try await client.api(.delete, "/api/admin/users/bob/sessions/\(firstSession!)", token: root)
            XCTAssertEqual(answer.status, .notFound, "a session is revoked only through its owner")

            answer = try await client.api(.delete, "/api/admin/users/alice/sessions", token: root)
            XCTAssertEqual(answer.body["revoked"] as? Int, 1)
            answer = try await client.api(.get, "/api/admin/users/alice/sessions", token: root)
            XCTAssertTrue(
                (answer.body["sessions"] as? [[String: Any]] ?? []).allSatisfy { $0["revoked_at"] is NSNumber })
        }
    }

    func testOrganizationsCreateListDelete() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            let tokens = try await client.orgTokens("alice", "org1")
            var answer = try await client.api(
                .post, "/api/admin/orgs", token: root, json: #"{"name":"org3","cluster_name":"cluster-three"}"#)
            XCTAssertEqual(answer.status, .created)
            XCTAssertEqual(answer.body["cluster_name"] as? String, "cluster-three")
            answer = try await client.api(.post, "/api/admin/orgs", token: root, json: #"{"name":"org3"}"#)
            XCTAssertEqual(answer.status, .conflict)
            answer = try await client.api(.post, "/api/admin/orgs", token: root, json: #"{"name":"no/slash"}"#)
            XCTAssertEqual(answer.status, .badRequest)
            answer = try await client.api(.get, "/api/admin/orgs", token: root)
            XCTAssertEqual((answer.body["orgs"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["org1", "org2", "org3"])
            answer = try await client.api(.delete, "/api/admin/orgs/org1", token: root)
            XCTAssertEqual(answer.status, .noContent)
            let refreshed = try await client.refresh(tokens.refresh)
            XCTAssertEqual(refreshed.status, .unauthorized, "its sessions went with it")
            answer = try await client.api(.delete, "/api/admin/orgs/org1", token: root)
            XCTAssertEqual(answer.status, .notFound)
        }
    }

    func testKeysListRotateRetireOverHTTP() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            var answer = try await client.api(.get, "/api/admin/keys", token: root)
            let keys = try XCTUnwrap(answer.body["keys"] as? [[String: Any]])
            XCTAssertEqual(Set(keys.compactMap { $0["state"] as? String }), ["active", "next"])
            let next = try XCTUnwrap(keys.first { $0["state"] as? String == "next" }?["kid"] as? String)

            answer = try await client.api(.post, "/api/admin/keys/rotate", token: root)
            XCTAssertEqual(answer.status, .conflict, "the next key is younger than key_prepublication")
            XCTAssertTrue((answer.body["detail"] as? String ?? "").contains(#"{"force": true}"#))
            harness.clock.advance(by: 601)
            answer = try await client.api(.post, "/api/admin/keys/rotate", token: root)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(harness.services.keyRing.snapshot.activeSigner(for: .rs256)?.kid, next, "the live ring follows")
            let tokens = try await client.orgTokens("alice", "org1")
            XCTAssertEqual(try harness.services.verifier.verify(tokens.access, audience: "org1").tokenID.isEmpty, false)

            answer = try await client.api(.post, "/api/admin/keys/\(next)/retire", token: root)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertFalse((answer.body["keys"] as? [[String: Any]] ?? []).contains { $0["kid"] as? String == next })
            XCTAssertThrowsError(try harness.services.verifier.verify(tokens.access, audience: "org1"), "its tokens stop validating")
            answer = try await client.api(.post, "/api/admin/keys/nope/retire", token: root)
            XCTAssertEqual(answer.status, .notFound)
            answer = try await client.api(.post, "/api/admin/keys/rotate", token: root, json: #"{"force":true}"#)
            XCTAssertEqual(answer.status, .ok, "force skips the pre-publication wait")
        }
    }

    func testIntrospectionReflectsRevocationAndDisabledAccountsAtOnce() async throws {
        let harness = self.harness!
        try await harness.services.accounts.addUser("gateway", password: ServerHarness.password, by: .operator)
        try await harness.services.accounts.setGlobalRole("gateway", to: .introspector, by: .operator)
        try await harness.withClient { client in
            let gateway = try await client.sessionToken("gateway")
            let alice = try await client.sessionToken("alice")
            let tokens = try await client.orgTokens("alice", "org1")

            var answer = try await client.form("/oauth/introspect", "token=\(tokens.access)")
            XCTAssertEqual(answer.status, .unauthorized)
            XCTAssertEqual(answer.error, "invalid_token")
            answer = try await client.form("/oauth/introspect", "token=\(tokens.access)", token: alice)
            XCTAssertEqual(answer.status, .forbidden)
            XCTAssertEqual(answer.error, "insufficient_scope")
            // An introspector may introspect, nothing else.
            let adminCall = try await client.api(.get, "/api/admin/users", token: gateway)
            XCTAssertEqual(adminCall.status, .forbidden)

            answer = try await client.form("/oauth/introspect", "token=\(tokens.access)", token: gateway)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(answer.body["active"] as? Bool, true)
            XCTAssertEqual(answer.body["token_type"] as? String, "access_token")
            XCTAssertEqual(answer.body["org"] as? String, "org1")
            XCTAssertEqual(answer.body["aud"] as? [String], ["org1"])
            XCTAssertEqual(answer.body["username"] as? String, "alice")
            answer = try await client.form("/oauth/introspect", "token=\(tokens.refresh)", token: gateway)
            XCTAssertEqual(answer.body["active"] as? Bool, true)
            XCTAssertEqual(answer.body["token_type"] as? String, "refresh_token")
            answer = try await client.form("/oauth/introspect", "token=garbage", token: gateway)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(answer.body as NSDictionary, ["active": false])
            answer = try await client.form("/oauth/introspect", "", token: gateway)
            XCTAssertEqual(answer.status, .badRequest)

            // RFC 7009: revoking the refresh token ends the session; its access token goes inactive.
            answer = try await client.form("/oauth/revoke", "token=\(tokens.refresh)&token_type_hint=refresh_token")
            XCTAssertEqual(answer.status, .ok)
            for token in [tokens.refresh, tokens.access] {
                answer = try await client.form("/oauth/introspect", "token=\(token)", token: gateway)
                XCTAssertEqual(answer.body["active"] as? Bool, false)
            }
            let refreshed = try await client.refresh(tokens.refresh)
            XCTAssertEqual(refreshed.status, .unauthorized)
            answer = try await client.form("/oauth/revoke", "token=unknown-token")
            XCTAssertEqual(answer.status, .ok, "unknown tokens are not reported")
            answer = try await client.form("/oauth/revoke", "token=x&token_type_hint=id_token")
            XCTAssertEqual(answer.error, "unsupported_token_type")

            // An access token revoked by itself; a disabled account's tokens.
            let other = try await client.orgTokens("alice", "org1")
            answer = try await client.form("/oauth/revoke", "token=\(other.access)")
            answer = try await client.form("/oauth/introspect", "token=\(other.access)", token: gateway)
            XCTAssertEqual(answer.body["active"] as? Bool, false)
            let third = try await client.orgTokens("alice", "org1")
            try await harness.services.accounts.setActive("alice", false, by: .operator)
            answer = try await client.form("/oauth/introspect", "token=\(third.access)", token: gateway)
            XCTAssertEqual(answer.body["active"] as? Bool, false)

            // Signing out of a session token.
            answer = try await client.form("/oauth/revoke", "token=\(gateway)")
            answer = try await client.form("/oauth/introspect", "token=\(third.access)", token: gateway)
            XCTAssertEqual(answer.status, .unauthorized, "a revoked session token no longer authenticates")
        }
    }

    func testBootstrapAdminOnAnEmptyStoreAndNeverWithoutAPassword() async throws {
        let bootstrapped = try await ServerHarness.make { configuration in
            configuration.bootstrapAdmin = "first-admin"
            configuration.bootstrapAdminPassword = "bootstrap passphrase 1"
        }
        let user = try await bootstrapped.services.accounts.user(named: "first-admin", by: .operator)
        XCTAssertEqual(user.globalRole, .admin)
        try await bootstrapped.withClient { client in
            _ = try await client.sessionToken("first-admin", password: "bootstrap passphrase 1")
        }
        XCTAssertFalse(bootstrapped.logs.all.contains { $0.contains("bootstrap passphrase 1") })
        try await bootstrapped.shutdown()

        do {
            let refused = try await ServerHarness.make { $0.bootstrapAdmin = "first-admin" }
            try await refused.shutdown()
            XCTFail("a bootstrap admin without a password must be refused")
        } catch let error as ConfigurationError {
            XCTAssertTrue(error.description.contains("no default password"), error.description)
        }
    }
}

