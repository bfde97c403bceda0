import BrokerCore
import FakeGitHub
import Foundation
import GitHubClient
import XCTest

/// The REST calls against the fake over loopback: shapes, headers, base paths, pagination.
final class RESTCallTests: XCTestCase {
    var github: FakeGitHub!

    override func setUp() async throws {
        github = try await FakeGitHub.start(maximumPerPage: 2)
        github.addUser(
            login: "alice", id: 42, token: "ghp_alice", organizations: ["acme": .admin, "other": .member],
            teams: [
                (organization: "acme", slug: "cluster-a"), (organization: "acme", slug: "cluster-b"),
                (organization: "other", slug: "cluster-c"), (organization: "acme", slug: "cluster-d"),
                (organization: "acme", slug: "cluster-e"),
            ])
        github.addUser(login: "bob", id: 43, token: "ghp_bob", organizations: ["acme": .pending])
    }

    override func tearDown() async throws {
        await github.stop()
    }

    func testUserAndTheHeadersGitHubExpects() async throws {
        let client = try github.client()
        let user = try await client.user(token: "ghp_alice")
        XCTAssertEqual(user, GitHubUser(login: "alice", id: 42))

        let request = try XCTUnwrap(github.requests(on: .user).first)
        XCTAssertEqual(request.method, "GET")
        XCTAssertEqual(request.target, "/user")
        XCTAssertEqual(request.headers["accept"], "application/vnd.github+json")
        XCTAssertEqual(request.headers["x-github-api-version"], "2022-11-28")
        XCTAssertEqual(request.headers["user-agent"], "broker-tests/1.0")
        XCTAssertEqual(request.headers["authorization"], "Bearer ghp_alice")
    }

    func testMembership() async throws {
        let client = try github.client()
        let admin = try await client.organizationMembership(token: "ghp_alice", organization: "acme", login: "alice")
        XCTAssertEqual(admin, GitHubOrganizationMembership(state: "active", role: "admin"))
        let pending = try await client.organizationMembership(token: "ghp_alice", organization: "acme", login: "bob")
        XCTAssertEqual(pending, GitHubOrganizationMembership(state: "pending", role: "member"))
        XCTAssertEqual(github.requests(on: .membership).first?.target, "/orgs/acme/memberships/alice")

        // 404 (not a member, or an org the token cannot see) is "no membership", not an error.
        let none = try await client.organizationMembership(token: "ghp_alice", organization: "nowhere", login: "alice")
        XCTAssertNil(none)
        let notBob = try await client.organizationMembership(token: "ghp_alice", organization: "other", login: "bob")
        XCTAssertNil(notBob)
    }

    func testPathSegmentsAreEncoded() async throws {
        let client = try github.client()
        // A slash or dot segment in a name must not reach another endpoint.
        let membership = try await client.organizationMembership(token: "ghp_alice", organization: "..", login: "../../user")
        XCTAssertNil(membership)
        XCTAssertEqual(github.requestCount(on: .user), 0)
    }

    func testTeamsFollowsLinkPagination() async throws {
        let client = try github.client()
        let teams = try await client.teams(token: "ghp_alice")
        XCTAssertEqual(teams.map(\.slug), ["cluster-a", "cluster-b", "cluster-c", "cluster-d", "cluster-e"])
        XCTAssertEqual(teams[2], GitHubTeam(slug: "cluster-c", organization: "other"))
        let targets = github.requests(on: .teams).map(\.target)
        XCTAssertEqual(
            targets,
            ["/user/teams?per_page=100", "/user/teams?per_page=2&page=2", "/user/teams?per_page=2&page=3"])
        XCTAssertTrue(github.requests(on: .teams).allSatisfy { $0.token == "ghp_alice" })
    }

    func testTeamsOfAUserWithoutTeams() async throws {
        let client = try github.client()
        let teams = try await client.teams(token: "ghp_bob")
        XCTAssertEqual(teams, [])
    }

    func testEnterpriseBasePath() async throws {
        let enterprise = try await FakeGitHub.start(apiPathPrefix: "/api/v3", maximumPerPage: 1)
        defer { Task { await enterprise.stop() } }
        enterprise.addUser(
            login: "carol", id: 7, token: "ghe_carol", organizations: ["corp": .member],
            teams: [(organization: "corp", slug: "x"), (organization: "corp", slug: "y")])
        XCTAssertTrue(enterprise.apiURL.hasSuffix("/api/v3"))
        // A trailing slash in the configured base must not produce `//` in request paths.
        let client = try enterprise.client { $0.apiURL = enterprise.apiURL + "/" }

        let user = try await client.user(token: "ghe_carol")
        XCTAssertEqual(user.login, "carol")
        let membership = try await client.organizationMembership(token: "ghe_carol", organization: "corp", login: "carol")
        XCTAssertEqual(membership?.state, "active")
        let teams = try await client.teams(token: "ghe_carol")
        XCTAssertEqual(teams.map(\.slug), ["x", "y"])
        XCTAssertEqual(
            enterprise.requests().map(\.target),
            [
                "/api/v3/user", "/api/v3/orgs/corp/memberships/carol", "/api/v3/user/teams?per_page=100",
                "/api/v3/user/teams?per_page=1&page=2",
            ])
        await enterprise.stop()
    }

    func testConnectionsAreReused() async throws {
        let client = try github.client()
        for _ in 0..<5 { _ = try await client.user(token: "ghp_alice") }
        _ = try await client.teams(token: "ghp_alice")
        let ports = Set(github.requests().compactMap(\.clientPort))
        XCTAssertEqual(github.requestCount(), 8)
        XCTAssertEqual(ports.count, 1, "every sequential call should ride the first connection")
    }

    func testConcurrentCallsAllSucceed() async throws {
        let client = try github.client()
        let logins = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<20 {
                group.addTask {
                    if index.isMultiple(of: 2) {
                        return try await client.user(token: "ghp_alice").login
                    } else {
                        return try await client.user(token: "ghp_bob").login
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(logins.count, 20)
        XCTAssertEqual(logins.filter { $0 == "alice" }.count, 10)
        XCTAssertEqual(github.requestCount(on: .user), 20)

        // And again on the warm connections.
        for _ in 0..<5 { _ = try await client.user(token: "ghp_alice") }
    }
}
