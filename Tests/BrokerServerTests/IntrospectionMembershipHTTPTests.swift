import BrokerCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// Issue 10.9 over a real loopback socket: introspection and `membership_status` agree at once
/// after a member's removal or role change.
final class IntrospectionMembershipHTTPTests: XCTestCase {
    static func introspect(_ client: any TestClientProtocol, _ token: String, as gateway: String) async throws -> [String: Any] {
        let answer = try await client.form("/oauth/introspect", "token=\(token)", token: gateway)
        XCTAssertEqual(answer.status, .ok)
        return answer.body
    }

    static func membershipStatus(_ client: any TestClientProtocol, _ access: String) async throws -> Bool? {
        let answer = try await client.api(.get, "/api/membership_status/org1", token: access)
        XCTAssertEqual(answer.status, .ok)
        return answer.body["active"] as? Bool
    }

    func testRemovalAndRoleChangesReachIntrospectionAtOnce() async throws {
        let harness = try await ServerHarness.withAdmin()
        _ = try await harness.services.accounts.setGlobalRole("bob", to: .introspector, by: .operator)
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            let gateway = try await client.sessionToken("bob")
            let first = try await client.orgTokens("alice", "org1")
            var body = try await Self.introspect(client, first.access, as: gateway)
            XCTAssertEqual(body["active"] as? Bool, true)
            XCTAssertEqual(body["org_roles"] as? [String], ["member"])
            let before = try await Self.membershipStatus(client, first.access)
            XCTAssertEqual(before, true, "a member")

            // A role change: the token's roles are no longer the holder's; its refresh brings the current ones.
            var answer = try await client.api(.put, "/api/orgs/org1/members/alice", token: root, json: #"{"role":"owner"}"#)
            XCTAssertEqual(answer.status, .ok)
            body = try await Self.introspect(client, first.access, as: gateway)
            XCTAssertEqual(body as NSDictionary, ["active": false], "old roles are never reported")
            let afterRoleChange = try await Self.membershipStatus(client, first.access)
            XCTAssertEqual(afterRoleChange, true, "still a member")
            body = try await Self.introspect(client, first.refresh, as: gateway)
            XCTAssertEqual(body["active"] as? Bool, true, "the session goes on")
            answer = try await client.refresh(first.refresh)
            XCTAssertEqual(answer.status, .ok)
            let second = (access: try XCTUnwrap(answer.body["access"] as? String), refresh: try XCTUnwrap(answer.body["refresh"] as? String))
            body = try await Self.introspect(client, second.access, as: gateway)
            XCTAssertEqual(body["active"] as? Bool, true)
            XCTAssertEqual(body["org_roles"] as? [String], ["owner", "member"])

            // Removal: introspection and membership_status say inactive at the same moment.
            answer = try await client.api(.delete, "/api/orgs/org1/members/alice", token: root)
            XCTAssertEqual(answer.status, .noContent)
            let afterRemoval = try await Self.membershipStatus(client, second.access)
            XCTAssertEqual(afterRemoval, false, "no longer a member")
            for token in [second.access, second.refresh] {
                body = try await Self.introspect(client, token, as: gateway)
                XCTAssertEqual(body as NSDictionary, ["active": false])
            }
            answer = try await client.refresh(second.refresh)
            XCTAssertNotEqual(answer.status, .ok, "the refresh agrees")

            // A broker session token whose global role changed.
            let rootSession = try await client.sessionToken("root")
            body = try await Self.introspect(client, rootSession, as: gateway)
            XCTAssertEqual(body["role"] as? String, "admin")
            _ = try await harness.services.accounts.setGlobalRole("alice", to: .admin, by: .operator)
            _ = try await harness.services.accounts.setGlobalRole("root", to: nil, by: .operator)
            body = try await Self.introspect(client, rootSession, as: gateway)
            XCTAssertEqual(body as NSDictionary, ["active": false])
        }
        try await harness.shutdown()
    }
}
