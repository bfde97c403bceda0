import BrokerCore
import BrokerGateway
import BrokerServer
import FakeGitHub
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

/// Roles per cluster: a multi-cluster (generation-2) token of an owner of one organization who
/// is a member of another reaches the other organization's cluster as a member, through
/// `broker gateway` here and through the shipped HAProxy and nginx configurations in
/// RealGatewayTests' harness.
final class ClusterRolesGatewayTests: XCTestCase {
    static let pat = "ghp_carol_cluster_roles"

    /// carol (GitHub `carol-gh`) is an owner of org1 and a member of org2; the first
    /// organization's roles are the ones a gateway forwarding `org_roles` alone would pass on.
    func testBrokerGatewayForwardsTheRolesAtItsOwnCluster() async throws {
        let (github, client, clock) = try await FakeGitHub.startWithClient()
        github.addUser(login: "carol-gh", id: 7070, token: Self.pat)
        let harness = try await ServerHarness.make(githubAPI: client, clock: clock)
        let accounts = harness.services.accounts
        try await accounts.addUser("carol", password: ServerHarness.password, by: .operator)
        try await accounts.linkGitHub("carol", login: "carol-gh", by: .operator)
        try await accounts.addMember(organization: "org1", username: "carol", role: .owner, by: .operator)
        try await accounts.addMember(organization: "org2", username: "carol", role: .member, by: .operator)
        let broker = try await LiveServer.broker(harness)
        let source = HTTPJWKSSource(url: "http://127.0.0.1:\(broker.port)/.well-known/jwks.json")
        do {
            let token = try await Self.githubLogin(port: broker.port, pat: Self.pat)
            let payload = try Self.payload(token)
            XCTAssertEqual(payload["aud"] as? [String], ["org1", "org2"])
            XCTAssertEqual(payload["org_roles"] as? [String], ["member"], "only the roles held in every organization")
            XCTAssertEqual(payload["cluster_roles"] as? [String: String], ["org1": "owner member", "org2": "member"])

            let validator = GatewayApplication.validator(
                source: source, issuer: harness.services.configuration.issuer, leeway: 30,
                cache: JWKSCacheConfiguration(), logger: GatewayTests.quietLogger, clock: harness.clock)
            for (cluster, roles) in [("org1", "owner member"), ("org2", "member")] {
                let gateway = GatewayApplication.make(
                    validator: validator, cluster: cluster, host: "127.0.0.1", port: 0, logger: GatewayTests.quietLogger)
                try await gateway.withLiveClient { client in
                    try await client.execute(uri: "/", method: .get, headers: [.authorization: "Bearer \(token)"]) { response in
                        XCTAssertEqual(response.status, .ok, cluster)
                        XCTAssertEqual(response.headers[HTTPField.Name("x-sliderule-account")!], "carol", "sub is the account, not the GitHub login")
                        XCTAssertEqual(response.headers[HTTPField.Name("x-sliderule-org-roles")!], roles, "at \(cluster)")
                    }
                }
            }

            // An online gateway (introspection) gets the same roles per cluster.
            try await accounts.addUser("gateway", password: ServerHarness.password, by: .operator)
            try await accounts.setGlobalRole("gateway", to: .introspector, by: .operator)
            try await harness.withClient { client in
                let introspector = try await client.sessionToken("gateway")
                let answer = try await client.form("/oauth/introspect", "token=\(token)", token: introspector)
                XCTAssertEqual(answer.status, .ok)
                XCTAssertEqual(answer.body["org_roles"] as? [String], ["member"])
                XCTAssertEqual(answer.body["cluster_roles"] as? [String: String], ["org1": "owner member", "org2": "member"])
            }
        } catch {
            try? await source.shutdown()
            try? await broker.stop()
            try? await harness.shutdown()
            await github.stop()
            throw error
        }
        try await source.shutdown()
        try await broker.stop()
        try await harness.shutdown()
        await github.stop()
    }

    /// `POST /auth/github/pat`; returns the generation-2 token.
    static func githubLogin(port: Int, pat: String) async throws -> String {
        try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
            let response = try await client.execute(
                .init(
                    "/auth/github/pat", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: #"{"pat":"\#(pat)"}"#)))
            guard response.status == .ok, let bytes = response.body,
                let object = try JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any],
                let token = object["token"] as? String
            else { throw GatewayTests.LoginFailed(status: response.status.code) }
            return token
        }
    }

    /// A token's payload, unverified: the claims exactly as the broker wrote them.
    static func payload(_ token: String) throws -> [String: Any] {
        let part = token.split(separator: ".")[1]
        let data = try XCTUnwrap(RealGateway.base64URLDecode(part))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

/// The same promise through the real gateways running the shipped configurations: HAProxy 2.6
/// (`haproxy.cfg`, which reads the payload itself) and nginx with `broker gateway`.
final class RealGatewayClusterRolesTests: XCTestCase {
    static let pat = "ghp_bob_real_gateway_roles"
    /// bob is an owner of org1 (cluster1) and a member of org2 (cluster2) and org3 (`lab.three`,
    /// a name with a dot): cluster, HAProxy's GATEWAY_CLUSTER_NAME, and the roles forwarded there.
    static let expected = [
        ("cluster1", "cluster1", "owner member"), ("cluster2", "cluster2", "member"), ("lab.three", "lab.three", "member"),
    ]

    func testHAProxyForwardsTheRolesAtItsOwnCluster() async throws {
        try await withGeneration2Token { broker, brokerPort, token in
            let stage = try HAProxyStage.prepare(broker, brokerPort: brokerPort)
            defer { stage.stop() }
            for (cluster, pattern, roles) in Self.expected {
                let (haproxy, port) = try stage.startHAProxy(cluster: pattern)
                defer { haproxy.stop() }
                let reply = try await RealGateway.get(
                    "http://127.0.0.1:\(port)/", token: token, headers: ["x-sliderule-org-roles": "admin owner member"])
                XCTAssertEqual(reply.status, 200, "\(cluster): \(reply.text)\n\(haproxy.output)")
                XCTAssertEqual(reply.echoed["x-sliderule-account"], "bob", "sub is the account, not the GitHub login")
                XCTAssertEqual(reply.echoed["x-sliderule-org-roles"], roles, "at \(cluster)")
            }
            // A token for one organization keeps its org_roles: bob's generation-1 token.
            let (haproxy, port) = try stage.startHAProxy()
            defer { haproxy.stop() }
            let generation1 = try await RealGateway.accessToken(broker: brokerPort, user: "bob", org: "org1")
            let reply = try await RealGateway.get("http://127.0.0.1:\(port)/", token: generation1)
            XCTAssertEqual(reply.echoed["x-sliderule-org-roles"], "owner member", reply.text)
        }
    }

    func testNginxWithBrokerGatewayForwardsTheRolesAtItsOwnCluster() async throws {
        try await withGeneration2Token { broker, brokerPort, token in
            for (cluster, _, roles) in Self.expected {
                let directory = try RealGateway.directory(broker, "nginx-\(cluster)")
                let (echo, backendPort) = try RealGateway.startEcho(in: directory)
                defer { echo.stop() }
                let (gateway, gatewayPort) = try RealGateway.startForwardAuth(
                    broker, brokerPort: brokerPort, cluster: cluster, in: directory)
                defer { gateway.stop() }
                let (nginx, port) = try RealGateway.startNginx(gatewayPort: gatewayPort, backendPort: backendPort, in: directory)
                defer { nginx.stop() }
                let reply = try await RealGateway.get(
                    "http://127.0.0.1:\(port)/", token: token, headers: ["x-sliderule-org-roles": "admin owner member"])
                XCTAssertEqual(reply.status, 200, "\(cluster): \(reply.text)\n\(gateway.output)\n\(nginx.output)")
                XCTAssertEqual(reply.echoed["x-sliderule-account"], "bob", "sub is the account, not the GitHub login")
                XCTAssertEqual(reply.echoed["x-sliderule-org-roles"], roles, "at \(cluster)")
            }
        }
    }

    /// The real-gateway broker with a fake GitHub, bob linked to `bob-gh` and a member of org2
    /// and org3 besides an owner of org1, serving; `body` gets bob's generation-2 token.
    func withGeneration2Token(
        _ body: (_ broker: BrokerBinary, _ brokerPort: Int, _ token: String) async throws -> Void
    ) async throws {
        let github = try await FakeGitHub.start(deviceInterval: 1)
        do {
            github.addUser(login: "bob-gh", id: 8080, token: Self.pat)
            let broker = try RealGateway.broker(
                """
                github_api_url: "\(github.apiURL)"
                github_web_url: "\(github.webURL)"
                github_client_id: "\(github.clientID)"
                """)
            defer { broker.cleanUp() }
            try RealGateway.run(
                [
                    ["orgs", "add", "org3", "--cluster", "lab.three"], ["members", "add", "org2", "bob"],
                    ["members", "add", "org3", "bob"], ["users", "link-github", "bob", "bob-gh"],
                ], on: broker)
            let (server, brokerPort) = try broker.serve()
            defer { server.terminate(); server.waitUntilExit() }
            let token = try await RealGateway.githubPATToken(broker: brokerPort, pat: Self.pat)
            let claims = RealGateway.part(token, 1)
            XCTAssertEqual(claims["aud"] as? [String], ["cluster1", "cluster2", "lab.three"])
            XCTAssertEqual(claims["org_roles"] as? [String], ["member"])
            try await body(broker, brokerPort, token)
        } catch {
            await github.stop()
            throw error
        }
        await github.stop()
    }
}
