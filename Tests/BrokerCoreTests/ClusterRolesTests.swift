import Foundation
import XCTest

@testable import BrokerCore

/// Which organization's roles a cluster of a multi-cluster token gets, when names collide.
final class ClusterRolesTests: XCTestCase {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func organization(_ name: String, cluster: String, audiences: [String]? = nil) -> Organization {
        Organization(id: name == "orgA" ? 1 : 2, name: name, clusterName: cluster, createdAt: now, tokenPolicy: .init(audiences: audiences))
    }

    /// An organization's own cluster name is its own, whoever else lists it.
    func testTheOrganizationWhoseClusterItIsWins() {
        let a = organization("orgA", cluster: "a")
        let b = organization("orgB", cluster: "b", audiences: ["b", "a"])
        let roles = GitHubLoginService.clusterRoles(
            ["a", "b"],
            of: [.init(organization: a, role: .member, clusters: ["a"]), .init(organization: b, role: .owner, clusters: ["b", "a"])],
            mappings: [])
        XCTAssertEqual(roles, ["a": ["member"], "b": ["owner", "member"]])
    }

    /// A team cluster configured for an organization is that organization's, even when the
    /// holder reaches it only through another organization's policy.
    func testAConfiguredTeamClusterBelongsToItsOrganization() {
        let a = organization("orgA", cluster: "a")
        let b = organization("orgB", cluster: "b", audiences: ["b", "a-team"])
        let mappings = [GitHubOrganizationMapping(organization: "orgA", githubOrganization: "GA", teams: ["t": "a-team"])]
        let roles = GitHubLoginService.clusterRoles(
            ["a", "a-team", "b"],
            of: [.init(organization: a, role: .member, clusters: ["a"]), .init(organization: b, role: .owner, clusters: ["b", "a-team"])],
            mappings: mappings)
        XCTAssertEqual(roles, ["a": ["member"], "a-team": ["member"], "b": ["owner", "member"]])
    }

    /// Two claimants alike (two policies listing one audience): the lower role, never more
    /// than either grants.
    func testATieGivesTheLowerRole() {
        let a = organization("orgA", cluster: "a", audiences: ["a", "shared"])
        let b = organization("orgB", cluster: "b", audiences: ["b", "shared"])
        let roles = GitHubLoginService.clusterRoles(
            ["shared"],
            of: [
                .init(organization: a, role: .admin, clusters: ["a", "shared"]),
                .init(organization: b, role: .member, clusters: ["b", "shared"]),
            ],
            mappings: [])
        XCTAssertEqual(roles, ["shared": ["member"]])
    }
}
