import FakeGitHub
import Foundation
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A gateway matches its cluster's name literally. Cluster names may hold letters, digits and
/// `-_.` (NamePolicy.validateOrganizationName); the dot is a regular-expression metacharacter,
/// so a gateway that puts the name into a pattern unquoted admits, at cluster `Lab-9_z.west`,
/// tokens for `Lab-9_zXwest` (a name any organization can claim) and forwards that cluster's
/// roles. Checked through the shipped HAProxy config and through nginx + `broker gateway`.
final class RealGatewayClusterNameTests: XCTestCase {
    static let pat = "ghp_bob_cluster_names"
    /// Every character the name policy allows, the dot among them.
    static let cluster = "Lab-9_z.west"
    /// The same name with the dot's "any character" match: `X`.
    static let lookalike = "Lab-9_zXwest"

    struct Tokens {
        /// alice's token for the lookalike's organization: aud [lookalike].
        var lookalikeOnly: String
        /// bob's generation-1 token for the cluster's organization: aud [cluster], member.
        var clusterOnly: String
        /// bob's multi-cluster token: a member at the cluster, an owner at the lookalike.
        var multiCluster: String
    }

    func testHAProxyMatchesTheClusterNameLiterally() async throws {
        try await withTokens { broker, brokerPort, tokens in
            let stage = try HAProxyStage.prepare(broker, brokerPort: brokerPort)
            defer { stage.stop() }
            for gatewayCluster in [Self.cluster, Self.lookalike] {
                let (haproxy, port) = try stage.startHAProxy(cluster: gatewayCluster)
                defer { haproxy.stop() }
                try await checks(url: "http://127.0.0.1:\(port)/", at: gatewayCluster, tokens, logs: { haproxy.output })
            }
        }
    }

    func testNginxWithBrokerGatewayMatchesTheClusterNameLiterally() async throws {
        try await withTokens { broker, brokerPort, tokens in
            for gatewayCluster in [Self.cluster, Self.lookalike] {
                let directory = try RealGateway.directory(broker, "nginx-\(gatewayCluster)")
                let (echo, backendPort) = try RealGateway.startEcho(in: directory)
                defer { echo.stop() }
                let (gateway, gatewayPort) = try RealGateway.startForwardAuth(
                    broker, brokerPort: brokerPort, cluster: gatewayCluster, in: directory)
                defer { gateway.stop() }
                let (nginx, port) = try RealGateway.startNginx(gatewayPort: gatewayPort, backendPort: backendPort, in: directory)
                defer { nginx.stop() }
                try await checks(
                    url: "http://127.0.0.1:\(port)/", at: gatewayCluster, tokens, logs: { gateway.output + nginx.output })
            }
        }
    }

    /// At the cluster: its own tokens pass with its roles, the lookalike's are refused; and the
    /// other way round at the lookalike.
    func checks(url: String, at gatewayCluster: String, _ tokens: Tokens, logs: () -> String) async throws {
        let atCluster = gatewayCluster == Self.cluster
        let multi = try await RealGateway.get(url, token: tokens.multiCluster, headers: ["x-sliderule-org-roles": "owner"])
        XCTAssertEqual(multi.status, 200, "\(gatewayCluster): \(multi.text)\n\(logs())")
        XCTAssertEqual(
            multi.echoed["x-sliderule-org-roles"], atCluster ? "member" : "owner member",
            "the roles at \(gatewayCluster), never those of the other name")

        let own = try await RealGateway.get(url, token: atCluster ? tokens.clusterOnly : tokens.lookalikeOnly)
        XCTAssertEqual(own.status, 200, "\(gatewayCluster): \(own.text)\n\(logs())")
        XCTAssertEqual(own.echoed["x-sliderule-org-roles"], "member")

        let other = try await RealGateway.get(url, token: atCluster ? tokens.lookalikeOnly : tokens.clusterOnly)
        XCTAssertEqual(other.status, 403, "a token for the other name at \(gatewayCluster): \(other.text)\n\(logs())")
        XCTAssertNil(other.echoed["x-sliderule-account"])
    }

    /// The real-gateway broker with a fake GitHub: organization `west` (cluster `Lab-9_z.west`,
    /// bob a member) and `lookalike` (cluster `Lab-9_zXwest`, bob an owner, alice a member).
    func withTokens(_ body: (_ broker: BrokerBinary, _ brokerPort: Int, _ tokens: Tokens) async throws -> Void) async throws {
        let github = try await FakeGitHub.start(deviceInterval: 1)
        do {
            github.addUser(login: "bob-gh", id: 8181, token: Self.pat)
            let broker = try RealGateway.broker(
                """
                github_api_url: "\(github.apiURL)"
                github_web_url: "\(github.webURL)"
                github_client_id: "\(github.clientID)"
                """)
            defer { broker.cleanUp() }
            try RealGateway.run(
                [
                    ["orgs", "add", "west", "--cluster", Self.cluster], ["orgs", "add", "lookalike", "--cluster", Self.lookalike],
                    ["members", "add", "west", "bob"], ["members", "add", "lookalike", "bob", "--role", "owner"],
                    ["members", "add", "lookalike", "alice"], ["users", "link-github", "bob", "bob-gh"],
                ], on: broker)
            let (server, brokerPort) = try broker.serve()
            defer { server.terminate(); server.waitUntilExit() }
            let multi = try await RealGateway.githubPATToken(broker: brokerPort, pat: Self.pat)
            let claims = RealGateway.part(multi, 1)
            XCTAssertEqual(Set(claims["aud"] as? [String] ?? []), ["cluster1", Self.cluster, Self.lookalike])
            let roles = try XCTUnwrap(claims["cluster_roles"] as? [String: String])
            XCTAssertEqual(roles[Self.cluster], "member")
            XCTAssertEqual(roles[Self.lookalike], "owner member")
            let tokens = Tokens(
                lookalikeOnly: try await RealGateway.accessToken(broker: brokerPort, user: "alice", org: "lookalike"),
                clusterOnly: try await RealGateway.accessToken(broker: brokerPort, user: "bob", org: "west"),
                multiCluster: multi)
            XCTAssertEqual(RealGateway.part(tokens.lookalikeOnly, 1)["aud"] as? [String], [Self.lookalike])
            XCTAssertEqual(RealGateway.part(tokens.clusterOnly, 1)["aud"] as? [String], [Self.cluster])
            try await body(broker, brokerPort, tokens)
        } catch {
            await github.stop()
            throw error
        }
        await github.stop()
    }
}
