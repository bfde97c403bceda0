import BrokerCore
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

/// Session tokens and the membership routes over a real loopback socket: who may ask, who may
/// decide, and what a decision changes for logins and refreshes.
final class MembershipHTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        harness = try await ServerHarness.withAdmin()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    func testSessionTokensNameTheBrokerAndAreRefusedWhereClusterTokensGo() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let answer = try await client.api(
                .post, "/api/session", json: #"{"username":"root","password":"\#(ServerHarness.password)"}"#)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(answer.body["token_type"] as? String, "Bearer")
            XCTAssertEqual(answer.body["expires_in"] as? Int, 900)
            let token = try XCTUnwrap(answer.body["token"] as? String)
            let claims = try harness.services.verifier.verify(token, audience: harness.services.configuration.issuer)
            XCTAssertEqual(claims.audience, [harness.services.configuration.issuer])
            XCTAssertEqual(claims.globalRole, "admin")
            XCTAssertEqual(claims.organization, "")
            // No cluster accepts it, and routes expecting a cluster token refuse it.
            XCTAssertThrowsError(try harness.services.verifier.verify(token, audience: "org1"))
            XCTAssertThrowsError(try harness.services.verifier.verify(token))
            let status = try await client.api(.get, "/api/membership_status/org1/", token: token)
            XCTAssertEqual(status.status, .unauthorized)

            let me = try await client.api(.get, "/api/session", token: token)
            XCTAssertEqual((me.body["user"] as? [String: Any])?["username"] as? String, "root")
            XCTAssertEqual((me.body["user"] as? [String: Any])?["global_role"] as? String, "admin")

            let alice = try await client.sessionToken("alice")
            XCTAssertNil(try harness.services.verifier.verify(alice, audience: harness.services.configuration.issuer).globalRole)

            let wrong = try await client.api(
                .post, "/api/session", json: #"{"username":"root","password":"wrong password here"}"#)
            XCTAssertEqual(wrong.status, .unauthorized)
            XCTAssertEqual(wrong.error, "invalid_credentials")
        }
    }

    func testSessionSignInIsThrottledLikeEveryPasswordLogin() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            for _ in 0..<5 {
                let wrong = try await client.api(
                    .post, "/api/session", json: #"{"username":"root","password":"not the password"}"#)
                XCTAssertEqual(wrong.status, .unauthorized)
            }
            let throttled = try await client.api(
                .post, "/api/session", json: #"{"username":"root","password":"\#(ServerHarness.password)"}"#)
            XCTAssertEqual(throttled.status, .tooManyRequests)
            XCTAssertEqual(throttled.error, "too_many_attempts")
            XCTAssertNotNil(throttled.headers[.retryAfter].flatMap { Int($0) })
            harness.clock.advance(by: 900)
            _ = try await client.sessionToken("root")
        }
    }

    func testMembershipRoutesNeedASessionToken() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            var answer = try await client.api(.post, "/api/orgs/org1/membership-requests")
            XCTAssertEqual(answer.status, .unauthorized)
            XCTAssertEqual(answer.error, "missing_token")
            XCTAssertEqual(answer.headers[.wwwAuthenticate], #"Bearer realm="broker""#)
            // An organization token is not a session token.
            let org = try await client.orgTokens("alice", "org1")
            answer = try await client.api(.get, "/api/orgs/org1/members", token: org.access)
            XCTAssertEqual(answer.status, .unauthorized)
            XCTAssertEqual(answer.error, "invalid_token")
            answer = try await client.api(.get, "/api/orgs/org1/members", token: "not.a.token")
            XCTAssertEqual(answer.status, .unauthorized)
        }
    }

    func testRequestApproveThenLoginAndLoseTheMembership() async throws {
        let harness = self.harness!
        try await harness.services.accounts.addMember(organization: "org1", username: "alice", role: .owner, by: .operator)
        try await harness.withClient { client in
            let bob = try await client.sessionToken("bob")
            let alice = try await client.sessionToken("alice")
            let before = try await client.orgTokens("bob", "org1")
            XCTAssertEqual(before.status, .forbidden, "not a member yet")

            var answer = try await client.api(.post, "/api/orgs/org1/membership-requests", token: bob)
            XCTAssertEqual(answer.status, .created)
            XCTAssertEqual(answer.body["status"] as? String, "pending")
            XCTAssertEqual(answer.body["username"] as? String, "bob")
            answer = try await client.api(.post, "/api/orgs/org1/membership-requests", token: bob)
            XCTAssertEqual(answer.status, .conflict, "one pending request at a time")
            answer = try await client.api(.post, "/api/orgs/org1/membership-requests", token: alice)
            XCTAssertEqual(answer.status, .conflict, "already a member")
            answer = try await client.api(.post, "/api/orgs/nope/membership-requests", token: bob)
            XCTAssertEqual(answer.status, .notFound)

            // Bob cannot decide on his own request.
            answer = try await client.api(.get, "/api/orgs/org1/membership-requests", token: bob)
            XCTAssertEqual(answer.status, .forbidden)
            XCTAssertEqual(answer.error, "forbidden")
            answer = try await client.api(.post, "/api/orgs/org1/membership-requests/bob/approve", token: bob)
            XCTAssertEqual(answer.status, .forbidden)

            answer = try await client.api(.get, "/api/orgs/org1/membership-requests", token: alice)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual((answer.body["requests"] as? [[String: Any]])?.map { $0["username"] as? String }, ["bob"])
            // An owner cannot grant more than owner.
            answer = try await client.api(
                .post, "/api/orgs/org1/membership-requests/bob/approve", token: alice, json: #"{"role":"admin"}"#)
            XCTAssertEqual(answer.status, .forbidden)
            answer = try await client.api(.post, "/api/orgs/org1/membership-requests/bob/approve", token: alice)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(answer.body["role"] as? String, "member")
            XCTAssertEqual(answer.body["active"] as? Bool, true)
            answer = try await client.api(.get, "/api/orgs/org1/membership-requests", token: alice)
            XCTAssertEqual((answer.body["requests"] as? [Any])?.count, 0)

            let tokens = try await client.orgTokens("bob", "org1")
            XCTAssertEqual(tokens.status, .ok)

            answer = try await client.api(.get, "/api/orgs/org1/members", token: alice)
            XCTAssertEqual(
                (answer.body["members"] as? [[String: Any]])?.map { "\($0["username"]!):\($0["role"]!)" },
                ["alice:owner", "bob:member"])

            answer = try await client.api(.delete, "/api/orgs/org1/members/bob", token: alice)
            XCTAssertEqual(answer.status, .noContent)
            let refreshed = try await client.refresh(tokens.refresh)
            XCTAssertEqual(refreshed.status, .forbidden, "a removed member's next refresh answers 403")
            XCTAssertEqual(refreshed.error, "not_a_member")
        }
    }

    func testApprovingRenewsAnInactiveMembershipWithTheGrantedRoleOnly() async throws {
        let harness = self.harness!
        let store = harness.services.store
        try await harness.services.accounts.addMember(organization: "org1", username: "alice", role: .owner, by: .operator)
        try await store.transaction { tx in
            let organization = try await tx.organization(named: "org1")!
            let bob = try await tx.user(named: "bob")!
            try await tx.upsertMembership(
                Membership(organizationID: organization.id, userID: bob.id, role: .admin, isActive: false, createdAt: Date()))
        }
        try await harness.withClient { client in
            let bob = try await client.sessionToken("bob")
            let alice = try await client.sessionToken("alice")
            var answer = try await client.api(.post, "/api/orgs/org1/membership-requests", token: bob)
            XCTAssertEqual(answer.status, .created, "an inactive membership may ask again")
            answer = try await client.api(.post, "/api/orgs/org1/membership-requests/bob/approve", token: alice)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(answer.body["role"] as? String, "member", "an owner cannot revive a role above their own")
        }
    }

    func testDenyAndRoleRules() async throws {
        let harness = self.harness!
        let accounts = harness.services.accounts
        try await accounts.addMember(organization: "org1", username: "alice", role: .owner, by: .operator)
        try await accounts.addUser("carol", password: ServerHarness.password, by: .operator)
        try await accounts.addMember(organization: "org1", username: "carol", role: .admin, by: .operator)
        try await accounts.addMember(organization: "org2", username: "bob", role: .owner, by: .operator)
        try await harness.withClient { client in
            let alice = try await client.sessionToken("alice")
            let bob = try await client.sessionToken("bob")
            let carol = try await client.sessionToken("carol")

            var answer = try await client.api(.post, "/api/orgs/org1/membership-requests", token: bob)
            XCTAssertEqual(answer.status, .created)
            answer = try await client.api(.post, "/api/orgs/org1/membership-requests/bob/deny", token: alice)
            XCTAssertEqual(answer.status, .noContent)
            answer = try await client.api(.post, "/api/orgs/org1/membership-requests/bob/deny", token: alice)
            XCTAssertEqual(answer.status, .notFound, "nothing pending any more")
            let denied = try await client.orgTokens("bob", "org1")
            XCTAssertEqual(denied.status, .forbidden)

            // The owner of org2 has no say in org1, and the reverse.
            answer = try await client.api(.get, "/api/orgs/org1/members", token: bob)
            XCTAssertEqual(answer.status, .forbidden)
            answer = try await client.api(.put, "/api/orgs/org2/members/bob", token: alice, json: #"{"role":"member"}"#)
            XCTAssertEqual(answer.status, .forbidden)

            // An owner may not touch an admin, nor make one; an admin may.
            answer = try await client.api(.put, "/api/orgs/org1/members/carol", token: alice, json: #"{"role":"member"}"#)
            XCTAssertEqual(answer.status, .forbidden)
            answer = try await client.api(.delete, "/api/orgs/org1/members/carol", token: alice)
            XCTAssertEqual(answer.status, .forbidden)
            answer = try await client.api(.put, "/api/orgs/org1/members/alice", token: carol, json: #"{"role":"admin"}"#)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(answer.body["role"] as? String, "admin")
            answer = try await client.api(.put, "/api/orgs/org1/members/alice", token: carol, json: #"{"role":"boss"}"#)
            XCTAssertEqual(answer.status, .badRequest)
            XCTAssertEqual(answer.error, "invalid_request")
            answer = try await client.api(.put, "/api/orgs/org1/members/nobody", token: carol, json: #"{"role":"member"}"#)
            XCTAssertEqual(answer.status, .notFound)
        }
    }

    func testOwnersSetTheTokenPolicyWithinTheBrokersBounds() async throws {
        let harness = self.harness!
        try await harness.services.accounts.addMember(organization: "org1", username: "alice", role: .owner, by: .operator)
        try await harness.withClient { client in
            let alice = try await client.sessionToken("alice")
            var answer = try await client.api(.get, "/api/orgs/org1/policy", token: alice)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertTrue(answer.body["access_lifetime"] is NSNull)
            XCTAssertEqual(answer.body["effective_audiences"] as? [String], ["org1"])

            answer = try await client.api(
                .put, "/api/orgs/org1/policy", token: alice, json: #"{"access_lifetime":600,"audiences":["org1","org1-jupyter"]}"#)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(answer.body["effective_audiences"] as? [String], ["org1", "org1-jupyter"])
            let tokens = try await client.orgTokens("alice", "org1")
            let claims = try harness.services.verifier.verify(tokens.access, audience: "org1-jupyter")
            XCTAssertEqual(claims.expiresAt - claims.issuedAt, 600)
            XCTAssertEqual(claims.audience, ["org1", "org1-jupyter"])
            let bundle = try await client.api(
                .post, "/api/org_token/",
                json: #"{"username":"alice","password":"\#(ServerHarness.password)","org_name":"org1"}"#)
            XCTAssertEqual(bundle.body["access_lifetime"] as? String, "600.0", "clients refresh at half of it")

            for (body, status) in [
                (#"{"access_lifetime":7200}"#, HTTPResponse.Status.badRequest),  // above the broker's 3600
                (#"{"access_lifetime":10}"#, .badRequest),
                (#"{"audiences":["*"]}"#, .badRequest),
                (#"{"audiences":[]}"#, .badRequest),
                (#"{"audiences":["org2"]}"#, .conflict),  // another organization's cluster
                (#"{"audiences":"org1"}"#, .badRequest),
            ] {
                answer = try await client.api(.put, "/api/orgs/org1/policy", token: alice, json: body)
                XCTAssertEqual(answer.status, status, body)
            }
            let bob = try await client.sessionToken("bob")
            answer = try await client.api(.put, "/api/orgs/org1/policy", token: bob, json: #"{"access_lifetime":600}"#)
            XCTAssertEqual(answer.status, .forbidden)
            // A new organization cannot take a cluster name that is already someone's audience.
            let root = try await client.sessionToken("root")
            answer = try await client.api(
                .post, "/api/admin/orgs", token: root, json: #"{"name":"org3","cluster_name":"org1-jupyter"}"#)
            XCTAssertEqual(answer.status, .conflict)
        }
    }

    func testAPolicyCannotClaimADeletedOrganizationsNamesUntilAnAdminReleasesThem() async throws {
        let harness = self.harness!
        let accounts = harness.services.accounts
        try await accounts.addMember(organization: "org1", username: "alice", role: .owner, by: .operator)
        try await accounts.setTokenPolicy(
            organization: "org2", to: OrganizationTokenPolicy(audiences: ["org2", "org2-jupyter"]),
            brokerAccessLifetime: 3600, by: .operator)
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            var answer = try await client.api(.delete, "/api/admin/orgs/org2", token: root)
            XCTAssertEqual(answer.status, .noContent)
            let alice = try await client.sessionToken("alice")
            // A gateway of org2's cluster may still run: its names stay reserved.
            for name in ["org2", "org2-jupyter"] {
                answer = try await client.api(
                    .put, "/api/orgs/org1/policy", token: alice, json: #"{"audiences":["org1","\#(name)"]}"#)
                XCTAssertEqual(answer.status, .conflict, name)
                XCTAssertEqual(answer.error, "audience_taken", name)
                answer = try await client.api(
                    .post, "/api/admin/orgs", token: root, json: #"{"name":"successor","cluster_name":"\#(name)"}"#)
                XCTAssertEqual(answer.status, .conflict, name)
                XCTAssertEqual(answer.error, "audience_taken", name)
            }
            answer = try await client.api(.get, "/api/admin/audience-names", token: root)
            let names = try XCTUnwrap(answer.body["audience_names"] as? [[String: Any]])
            let reserved = names.first { $0["name"] as? String == "org2-jupyter" }
            XCTAssertEqual(reserved?["holder"] as? String, "reserved")
            XCTAssertEqual(reserved?["organization"] as? String, "org2")
            answer = try await client.api(.delete, "/api/admin/audience-names/org2-jupyter", token: alice)
            XCTAssertEqual(answer.status, .forbidden, "only an admin releases a name")
            answer = try await client.api(.delete, "/api/admin/audience-names/org2-jupyter", token: root)
            XCTAssertEqual(answer.status, .noContent)
            answer = try await client.api(
                .put, "/api/orgs/org1/policy", token: alice, json: #"{"audiences":["org1","org2-jupyter"]}"#)
            XCTAssertEqual(answer.status, .ok)
            let tokens = try await client.orgTokens("alice", "org1")
            XCTAssertEqual(try harness.services.verifier.verify(tokens.access, audience: "org2-jupyter").audience, ["org1", "org2-jupyter"])
            answer = try await client.api(
                .post, "/api/admin/orgs", token: root, json: #"{"name":"successor","cluster_name":"org2"}"#)
            XCTAssertEqual(answer.error, "audience_taken", "org2 is still reserved")
        }
    }

    func testServiceAudiencesAreOpenToEveryOrganizationAndNeverAClusterName() async throws {
        let harness = self.harness!
        let accounts = harness.services.accounts
        try await accounts.addMember(organization: "org1", username: "alice", role: .owner, by: .operator)
        try await accounts.addMember(organization: "org2", username: "bob", role: .owner, by: .operator)
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            var answer = try await client.api(.put, "/api/admin/service-audiences/provisioner", token: root)
            XCTAssertEqual(answer.status, .noContent)
            for (user, org) in [("alice", "org1"), ("bob", "org2")] {
                let token = try await client.sessionToken(user)
                answer = try await client.api(
                    .put, "/api/orgs/\(org)/policy", token: token, json: #"{"audiences":["\#(org)","provisioner"]}"#)
                XCTAssertEqual(answer.status, .ok, org)
                XCTAssertEqual(answer.body["effective_audiences"] as? [String], [org, "provisioner"])
                let tokens = try await client.orgTokens(user, org)
                XCTAssertEqual(try harness.services.verifier.verify(tokens.access, audience: "provisioner").organization, org)
            }
            answer = try await client.api(
                .post, "/api/admin/orgs", token: root, json: #"{"name":"org3","cluster_name":"provisioner"}"#)
            XCTAssertEqual(answer.status, .conflict)
            XCTAssertEqual(answer.error, "audience_taken")
            answer = try await client.api(.put, "/api/admin/service-audiences/org1", token: root)
            XCTAssertEqual(answer.status, .conflict, "a cluster name is never a service audience")
            XCTAssertEqual(answer.error, "audience_taken")
            answer = try await client.api(.delete, "/api/admin/service-audiences/provisioner", token: root)
            XCTAssertEqual(answer.status, .conflict, "policies list it")
        }
    }

    func testRacingPolicyUpdatesNeverGiveOneNameToTwoOrganizations() async throws {
        let harness = self.harness!
        let accounts = harness.services.accounts
        try await accounts.addMember(organization: "org1", username: "alice", role: .owner, by: .operator)
        try await accounts.addMember(organization: "org2", username: "bob", role: .owner, by: .operator)
        try await harness.withClient { client in
            let alice = try await client.sessionToken("alice")
            let bob = try await client.sessionToken("bob")
            @Sendable func claim(_ org: String, _ token: String, _ name: String) async throws -> (String, HTTPResponse.Status, String?) {
                let answer = try await client.api(
                    .put, "/api/orgs/\(org)/policy", token: token, json: #"{"audiences":["\#(org)","\#(name)"]}"#)
                return (org, answer.status, answer.error)
            }
            for round in 0..<4 {
                let contested = "contested-\(round)"
                async let first = claim("org1", alice, contested)
                async let second = claim("org2", bob, contested)
                let answers = try await [first, second]
                let winners = answers.filter { $0.1 == .ok }.map(\.0)
                XCTAssertEqual(winners.count, 1, "round \(round): \(answers)")
                XCTAssertEqual(answers.filter { $0.2 == "audience_taken" }.count, 1, "round \(round): \(answers)")
                let holders = try await accounts.organizations(by: .operator).filter { $0.tokenAudience.contains(contested) }
                XCTAssertEqual(holders.map(\.name), winners)
            }
        }
    }
}
