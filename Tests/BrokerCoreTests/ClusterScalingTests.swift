import BrokerCore
import BrokerSync
import Foundation
import XCTest

/// The rules of the generation-1 scaling calls that HTTP tests reach only with difficulty: an
/// audit trail that cannot be written, and organizations whose members GitHub decides.
final class ClusterScalingTests: XCTestCase {
    struct Answer: ProvisionerAnswer {
        var statusCode: Int
    }

    /// Counts the calls that reached "the provisioner".
    final class Forwarded: Sendable {
        private let count = Locked(0)
        var calls: Int { count.withLock { $0 } }

        func forward(_ identity: ScalingIdentity) async throws -> Answer {
            count.withLock { $0 += 1 }
            return Answer(statusCode: 200)
        }
    }

    func testInClosedModeAnUnrecordedChangeIsNotForwarded() async throws {
        let sink = InMemoryAuditSink()
        let harness = try await CoreHarness.make(auditSink: sink) { $0.auditFailureMode = .failClosed }
        try await harness.seed()
        let access = try await harness.services.orgTokens.login(
            username: "alice", password: CoreHarness.password, organization: "org1"
        ).access
        let forwarded = Forwarded()
        sink.setFailing(true)

        let change = ScalingCall(organization: "org1", operation: .setDesiredNodes(3, minutes: 15))
        await XCTAssertBrokerError(.auditUnavailable) {
            try await harness.services.scaling.run(change, bearer: access, forward: forwarded.forward)
        }
        XCTAssertEqual(forwarded.calls, 0, "nothing was asked of the provisioner")
        // Readings are not audited: they go ahead.
        let reading = ScalingCall(organization: "org1", operation: .readNodeCounts)
        _ = try await harness.services.scaling.run(reading, bearer: access, forward: forwarded.forward)
        XCTAssertEqual(forwarded.calls, 1)
        try await harness.shutdown()
    }

    /// In a `github_orgs` organization GitHub, not the store, decides who is a member: a GitHub
    /// login's token is taken at its word (its roles forwarded); a password login's is not.
    func testGitHubDecidesTheMembersOfAMappedOrganization() async throws {
        let harness = try await CoreHarness.make {
            $0.githubOrganizations = [GitHubOrganizationMapping(organization: "earth", githubOrganization: "EarthLab")]
        }
        try await harness.seed()
        let services = harness.services
        try await services.accounts.addUser("carol", password: CoreHarness.password, by: .operator)
        let (carol, earth, org2) = try await services.store.read { tx in
            (try await tx.user(named: "carol")!, try await tx.organization(named: "earth")!, try await tx.organization(named: "org2")!)
        }
        func token(_ organization: Organization, identityProvider: String) async throws -> String {
            try await services.issuer.issue(
                .organization(
                    user: carol, organization: organization, role: .owner, authenticatedAt: harness.clock.now(),
                    authenticationMethods: [identityProvider == "github" ? "github_pat" : "pwd"],
                    identityProvider: identityProvider, client: .slideRuleDefault,
                    githubLogin: identityProvider == "github" ? "carol" : nil),
                lifetime: 600
            ).token
        }

        let identity = try await services.scaling.authorize(
            bearer: try await token(earth, identityProvider: "github"), organization: "earth")
        XCTAssertEqual(identity, ScalingIdentity(account: "carol", organization: "earth", roles: Role.owner.impliedRoles))
        await XCTAssertBrokerError(.notAMember) {
            try await services.scaling.authorize(bearer: try await token(earth, identityProvider: "local"), organization: "earth")
        }
        await XCTAssertBrokerError(.notAMember) {
            try await services.scaling.authorize(bearer: try await token(org2, identityProvider: "github"), organization: "org2")
        }
        try await harness.shutdown()
    }

    func testTheCallsPathIsRebuiltFromCheckedValues() throws {
        XCTAssertEqual(ScalingCall(organization: "org1", operation: .readNodeCounts).path, "/api/org_num_nodes/org1/")
        XCTAssertEqual(
            ScalingCall(organization: "org1", operation: .setDesiredNodes(0, minutes: nil)).path, "/api/desired_org_num_nodes/org1/0/")
        XCTAssertEqual(
            ScalingCall(organization: "a.b-c_d", operation: .setDesiredNodes(7, minutes: 60)).path,
            "/api/desired_org_num_nodes_ttl/a.b-c_d/7/60/")
        // What never passes the token check is escaped all the same.
        XCTAssertEqual(ScalingCall(organization: "..", operation: .readAddress).path, "/api/org_ip_adr/%2E%2E/")
        XCTAssertEqual(ScalingCall(organization: "a/../b?c", operation: .readAddress).path, "/api/org_ip_adr/a%2F..%2Fb%3Fc/")
        XCTAssertEqual(try ScalingCall.count("007", named: "n"), 7)
        XCTAssertEqual(try ScalingCall.count("1000000", named: "n"), 1_000_000)
        for bad in ["", "-1", "+1", "1e3", "1.0", " 1", "1000001", "0x1", "١", "99999999"] {
            XCTAssertThrowsError(try ScalingCall.count(bad, named: "n"), bad)
        }
    }
}
