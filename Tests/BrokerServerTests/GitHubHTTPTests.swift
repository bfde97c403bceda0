import BrokerCore
import FakeGitHub
import Foundation
import GitHubClient
import Hummingbird
import HummingbirdTesting
import XCTest

/// GitHub logins end to end: HTTP in, the libcurl client out to a fake GitHub on loopback.
final class GitHubHTTPTests: XCTestCase {
    var github: FakeGitHub!
    var harness: ServerHarness!

    override func setUp() async throws {
        (github, harness) = try await ServerHarness.withFakeGitHub(teams: ["devs": "sliderule-dev"])
        github.addUser(login: "carol", id: 30, token: "ghp_carol", organizations: ["SlideRuleEarth": .admin], teams: [("SlideRuleEarth", "devs")])
        github.addUser(login: "dan", id: 31, token: "ghp_dan_noscope", scopes: [], organizations: ["SlideRuleEarth": .member])
    }

    override func tearDown() async throws {
        try await harness.shutdown()
        await github.stop()
    }

    static func pat(_ client: any TestClientProtocol, _ token: String) async throws -> (HTTPResponse.Status, [String: Any]) {
        try await client.postJSON("/auth/github/pat", #"{"pat":"\#(token)"}"#)
    }

    func testPATLoginAnswersInGeneration2Shape() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let (status, body) = try await Self.pat(client, "ghp_carol")
            XCTAssertEqual(status, .ok)
            XCTAssertEqual(body["status"] as? String, "success")
            let token = try XCTUnwrap(body["token"] as? String)
            let metadata = try XCTUnwrap(body["metadata"] as? [String: Any])
            let claims = try harness.services.verifier.verify(token, audience: "sliderule-dev")
            XCTAssertEqual(metadata["exp"] as? Int, Int(claims.expiresAt))
            XCTAssertEqual(metadata["sub"] as? String, "carol")
            XCTAssertEqual(metadata["github_login"] as? String, "carol")
            XCTAssertEqual(metadata["org_roles"] as? [String], ["owner", "member"])
            XCTAssertEqual(metadata["aud"] as? [String], ["sliderule", "sliderule-dev"])
            XCTAssertEqual(metadata["memberships"] as? [String: [String]], ["sliderule": ["owner", "member"]])
            XCTAssertEqual(metadata["idp"] as? String, "github")
        }
    }

    func testGitHubSessionSignInForTheMembershipAndAdminAPI() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            var answer = try await client.api(.post, "/api/session/github", json: #"{"access_token":"ghp_carol"}"#)
            XCTAssertEqual(answer.status, .ok)
            let token = try XCTUnwrap(answer.body["token"] as? String)
            let claims = try harness.services.verifier.verify(token, audience: harness.services.configuration.issuer)
            XCTAssertEqual(claims.subject, "carol")
            XCTAssertEqual(claims.authenticationMethods, ["github"])
            XCTAssertNil(claims.globalRole)
            // A GitHub-admitted account may ask to join another organization, not administer.
            answer = try await client.api(.post, "/api/orgs/org2/membership-requests", token: token)
            XCTAssertEqual(answer.status, .created)
            XCTAssertEqual(answer.body["username"] as? String, "carol")
            answer = try await client.api(.get, "/api/admin/users", token: token)
            XCTAssertEqual(answer.status, .forbidden)

            answer = try await client.api(.post, "/api/session/github", json: #"{"access_token":"ghp_revoked"}"#)
            XCTAssertEqual(answer.status, .unauthorized)
            XCTAssertEqual(answer.error, "github_token_invalid")
        }
    }

    /// `sliderule-dev` exists only in the configuration (a team cluster of sliderule): no other
    /// organization's policy may put it in `aud`, or its gateway would admit their tokens.
    func testAPolicyCannotClaimAnotherOrganizationsConfiguredTeamCluster() async throws {
        let harness = self.harness!
        let accounts = harness.services.accounts
        try await accounts.addMember(organization: "org1", username: "alice", role: .owner, by: .operator)
        try await accounts.addMember(organization: "sliderule", username: "bob", role: .owner, by: .operator)
        try await harness.withClient { client in
            let alice = try await client.sessionToken("alice")
            var answer = try await client.api(
                .put, "/api/orgs/org1/policy", token: alice, json: #"{"audiences":["org1","sliderule-dev"]}"#)
            XCTAssertEqual(answer.status, .conflict)
            XCTAssertEqual(answer.error, "audience_taken")
            XCTAssertFalse(try XCTUnwrap(answer.body["detail"] as? String).contains("sliderule "), "another organization is not named")
            let tokens = try await client.orgTokens("alice", "org1")
            XCTAssertThrowsError(try harness.services.verifier.verify(tokens.access, audience: "sliderule-dev"))
            // Its own organization may list it.
            let bob = try await client.sessionToken("bob")
            answer = try await client.api(
                .put, "/api/orgs/sliderule/policy", token: bob, json: #"{"audiences":["sliderule","sliderule-dev"]}"#)
            XCTAssertEqual(answer.status, .ok)
        }
    }

    func testGitHubFailuresGetTheRightStatusAndShape() async throws {
        let harness = self.harness!
        let github = self.github!
        try await harness.withClient { client in
            var (status, body) = try await Self.pat(client, "ghp_revoked")
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["status"] as? String, "error")
            XCTAssertEqual(body["error"] as? String, "github_token_invalid")

            (status, body) = try await Self.pat(client, "ghp_dan_noscope")
            XCTAssertEqual(status, .forbidden)
            XCTAssertEqual(body["error"] as? String, "github_forbidden")

            github.inject(.status(502), on: .user)
            (status, body) = try await Self.pat(client, "ghp_carol_5xx")
            XCTAssertEqual(status, .serviceUnavailable)
            XCTAssertEqual(body["error"] as? String, "github_unavailable")
            github.clearFaults()

            github.inject(.malformedBody, on: .user)
            (status, body) = try await Self.pat(client, "ghp_garbage")
            XCTAssertEqual(status, .badGateway)
            XCTAssertEqual(body["error"] as? String, "github_bad_response")
            github.clearFaults()

            github.inject(.delay(.seconds(3)), on: .user)
            let started = ContinuousClock.now
            (status, body) = try await Self.pat(client, "ghp_slow")
            XCTAssertEqual(status, .serviceUnavailable)
            XCTAssertEqual(body["error"] as? String, "github_unavailable")
            XCTAssertLessThan(ContinuousClock.now - started, .seconds(3), "answered within the 1 s timeout, not GitHub's 3 s")
            github.clearFaults()
        }
    }

    func testRateLimitAnswers503WithRetryAfterAndStopsCalling() async throws {
        let harness = self.harness!
        let github = self.github!
        github.addToken("ghp_carol_limited", for: "carol")
        github.exhaustRateLimit(token: "ghp_carol_limited", answer: .tooManyRequests(retryAfter: 40))
        try await harness.withClient { client in
            for _ in 0..<2 {
                try await client.execute(
                    uri: "/auth/github/pat", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: #"{"pat":"ghp_carol_limited"}"#)
                ) { response in
                    XCTAssertEqual(response.status, .serviceUnavailable)
                    XCTAssertEqual(response.headers[.retryAfter], "40")
                    let body = try TestClientProtocolHelpers.object(response)
                    XCTAssertEqual(body["error"] as? String, "github_rate_limited")
                }
            }
            XCTAssertEqual(github.requestCount(on: .user, token: "ghp_carol_limited"), 1, "no call until the reset")
        }
    }

    func testPasswordLoginsAndKeysWorkWhileGitHubIsDown() async throws {
        let harness = self.harness!
        await github.stop()
        try await harness.withClient { client in
            try await harness.services.accounts.addMember(organization: "org1", username: "alice", role: .member, by: .operator)
            let (status, _) = try await client.postJSON("/api/org_token/", Generation1HTTPTests.login)
            XCTAssertEqual(status, .ok)
            let (jwksStatus, _) = try await client.getJSON("/.well-known/jwks.json")
            XCTAssertEqual(jwksStatus, .ok)
            let (patStatus, body) = try await Self.pat(client, "ghp_carol")
            XCTAssertEqual(patStatus, .serviceUnavailable)
            XCTAssertEqual(body["error"] as? String, "github_unavailable")
        }
    }

    func testDeviceFlowPendingSlowDownApprovedExpiredDenied() async throws {
        let harness = self.harness!
        let github = self.github!
        try await harness.withClient { client in
            var (status, body) = try await client.postJSON("/auth/github/device", "")
            XCTAssertEqual(status, .ok)
            for key in ["device_code", "user_code", "verification_uri", "verification_uri_complete", "expires_in", "interval"] {
                XCTAssertNotNil(body[key], key)
            }
            XCTAssertEqual(body["interval"] as? Int, 5)
            let deviceCode = try XCTUnwrap(body["device_code"] as? String)
            let userCode = try XCTUnwrap(body["user_code"] as? String)

            (status, body) = try await client.postJSON("/auth/github/device/poll", #"{"device_code":"\#(deviceCode)"}"#)
            XCTAssertEqual(status, .accepted)
            XCTAssertEqual(body["status"] as? String, "pending")
            XCTAssertEqual(body["error"] as? String, "authorization_pending")
            XCTAssertEqual(body["interval"] as? Int, 5, "GitHub's interval")
            // Polling again at once is faster than the interval: GitHub says slow_down.
            (status, body) = try await client.postJSON("/auth/github/device/poll", #"{"device_code":"\#(deviceCode)"}"#)
            XCTAssertEqual(status, .accepted)
            XCTAssertEqual(body["error"] as? String, "slow_down")
            XCTAssertGreaterThan(body["interval"] as? Int ?? 0, 5)

            harness.clock.advance(by: 20)
            github.approveDevice(userCode: userCode, token: "ghp_carol")
            (status, body) = try await client.postJSON("/auth/github/device/poll", #"{"device_code":"\#(deviceCode)"}"#)
            XCTAssertEqual(status, .ok)
            XCTAssertEqual(body["status"] as? String, "success")
            let token = try XCTUnwrap(body["token"] as? String)
            XCTAssertEqual(try harness.services.verifier.verify(token).authenticationMethods, ["github_device"])

            (status, body) = try await client.postJSON("/auth/github/device/poll", #"{"device_code":"unknown-code"}"#)
            XCTAssertEqual(status, .badRequest)
            XCTAssertEqual(body["status"] as? String, "error")

            let (_, second) = try await client.postJSON("/auth/github/device", "")
            github.denyDevice(userCode: try XCTUnwrap(second["user_code"] as? String))
            harness.clock.advance(by: 20)
            (status, body) = try await client.postJSON(
                "/auth/github/device/poll", #"{"device_code":"\#(try XCTUnwrap(second["device_code"] as? String))"}"#)
            XCTAssertEqual(status, .badRequest)
            XCTAssertEqual(body["error"] as? String, "access_denied")

            let (_, third) = try await client.postJSON("/auth/github/device", "")
            harness.clock.advance(by: 901)
            (status, body) = try await client.postJSON(
                "/auth/github/device/poll", #"{"device_code":"\#(try XCTUnwrap(third["device_code"] as? String))"}"#)
            XCTAssertEqual(status, .badRequest)
            XCTAssertEqual(body["error"] as? String, "expired_token")
        }
    }

    func testRefreshGeneration1GitHubLoginAndTokenExchange() async throws {
        let harness = self.harness!
        let github = self.github!
        try await harness.withClient { client in
            let (_, login) = try await Self.pat(client, "ghp_carol")
            let token = try XCTUnwrap(login["token"] as? String)
            harness.clock.advance(by: 60)
            var (status, body) = try await client.getJSON("/auth/refresh", headers: [.authorization: "Bearer \(token)"])
            XCTAssertEqual(status, .ok)
            XCTAssertNotNil(body["token"] as? String)
            XCTAssertNotNil(body["exp"] as? Int)

            (status, body) = try await client.postJSON(
                "/api/org_token_github/", #"{"org_name":"sliderule","access_token":"ghp_carol"}"#)
            XCTAssertEqual(status, .ok)
            XCTAssertEqual(Set(body.keys), ["access", "refresh", "access_lifetime", "refresh_lifetime", "exp"])
            (status, body) = try await client.postJSON(
                "/api/org_token_github/", #"{"org_name":"org2","access_token":"ghp_carol"}"#)
            XCTAssertEqual(status, .forbidden)
            XCTAssertEqual(body["error"] as? String, "not_a_member")

            try await client.execute(
                uri: "/oauth/token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(
                    string: "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=ghp_carol"
                        + "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&audience=sliderule")
            ) { response in
                XCTAssertEqual(response.status, .ok)
                let body = try TestClientProtocolHelpers.object(response)
                XCTAssertEqual(body["issued_token_type"] as? String, "urn:ietf:params:oauth:token-type:access_token")
                XCTAssertEqual(body["token_type"] as? String, "Bearer")
                XCTAssertEqual(body["expires_in"] as? Int, 3600)
                XCTAssertNotNil(body["refresh_token"] as? String)
                let access = try XCTUnwrap(body["access_token"] as? String)
                XCTAssertEqual(try harness.services.verifier.verify(access, audience: "sliderule").subject, "carol")
            }

            // Carol leaves the GitHub org; once the cached identity expires, /auth/refresh says
            // log in again, and the new login is refused.
            github.setMembership(login: "carol", organization: "SlideRuleEarth", nil)
            github.setTeams(login: "carol", [])
            harness.clock.advance(by: 301)
            (status, body) = try await client.getJSON("/auth/refresh", headers: [.authorization: "Bearer \(token)"])
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["status"] as? String, "error")
            (status, body) = try await Self.pat(client, "ghp_carol")
            XCTAssertEqual(status, .forbidden)
            XCTAssertEqual(body["error"] as? String, "not_a_member")
        }
    }
    static func auditLines(_ harness: ServerHarness) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: harness.services.configuration.auditLogPath, encoding: .utf8)
        return try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// The GitHub identity is the numeric user id: a rename keeps the account; whoever registers
    /// the old login gets 401 until the account carries the new one, then an account of their own.
    func testARenameKeepsTheAccountAndTheOldLoginsNewHolderIsRefused() async throws {
        let harness = self.harness!
        let github = self.github!
        try await harness.withClient { client in
            var (status, body) = try await Self.pat(client, "ghp_carol")
            XCTAssertEqual(status, .ok)
            let carol = try XCTUnwrap(body["metadata"] as? [String: Any])
            let carolID = try XCTUnwrap(carol["user_id"] as? Int)

            github.renameUser("carol", to: "carol-renamed")
            github.addUser(login: "carol", id: 77, token: "ghp_mallory", organizations: ["SlideRuleEarth": .admin])
            (status, body) = try await Self.pat(client, "ghp_mallory")
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["status"] as? String, "error")
            XCTAssertEqual(body["error"] as? String, "github_identity_mismatch")
            let (generation1, refused) = try await client.postJSON(
                "/api/org_token_github/", #"{"org_name":"sliderule","access_token":"ghp_mallory"}"#)
            XCTAssertEqual(generation1, .unauthorized)
            XCTAssertEqual(refused["error"] as? String, "github_identity_mismatch")
            let audited = try Self.auditLines(harness).filter { $0["reason"] as? String == "github_identity_mismatch" }
            XCTAssertEqual(audited.count, 2, "each refusal is audited")
            XCTAssertEqual(audited.first?["action"] as? String, "login.github_pat")
            XCTAssertEqual(audited.first?["outcome"] as? String, "failure")
            XCTAssertEqual(audited.first?["client_ip"] as? String, "127.0.0.1")

            harness.clock.advance(by: 301)  // GitHub is asked again
            (status, body) = try await Self.pat(client, "ghp_carol")
            XCTAssertEqual(status, .ok)
            let renamed = try XCTUnwrap(body["metadata"] as? [String: Any])
            XCTAssertEqual(renamed["user_id"] as? Int, carolID, "the same account")
            XCTAssertEqual(renamed["sub"] as? String, "carol")
            XCTAssertEqual(renamed["github_login"] as? String, "carol-renamed")
            XCTAssertEqual(renamed["org_roles"] as? [String], ["owner", "member"])

            (status, body) = try await Self.pat(client, "ghp_mallory")
            XCTAssertEqual(status, .ok)
            let mallory = try XCTUnwrap(body["metadata"] as? [String: Any])
            XCTAssertNotEqual(mallory["user_id"] as? Int, carolID)
            XCTAssertEqual(mallory["sub"] as? String, "carol@github", "two people never share a sub")
            XCTAssertEqual(mallory["github_login"] as? String, "carol")

            // Introspection names the account too.
            try await harness.services.accounts.setGlobalRole("bob", to: .introspector, by: .operator)
            let introspector = try await client.sessionToken("bob")
            let answer = try await client.form("/oauth/introspect", "token=\(try XCTUnwrap(body["token"] as? String))", token: introspector)
            XCTAssertEqual(answer.body["active"] as? Bool, true)
            XCTAssertEqual(answer.body["sub"] as? String, "carol@github")
            XCTAssertEqual(answer.body["github_login"] as? String, "carol")
        }
    }
}
