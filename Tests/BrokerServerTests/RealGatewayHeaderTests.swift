import Foundation
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// No `x-sliderule-*` header a client makes up reaches the nodes through a shipped gateway: the
/// real HAProxy removes them all, nginx with `broker gateway` replaces the identity headers and
/// refuses the rest. The headers SlideRule's own client sends pass through both unchanged.
final class RealGatewayHeaderTests: XCTestCase {
    /// What a client might try: its own identity, a role header of a name no gateway sets, and
    /// any name a node might one day read, in whatever case.
    static let forged = [
        "x-sliderule-account": "mallory", "X-SlideRule-Org-Roles": "owner", "X-SlideRule-Roles": "owner",
        "x-sliderule-anything": "x",
    ]
    /// What SlideRule's Python client sends on every request to a cluster (sliderule/session.py).
    static let client = [
        "x-sliderule-client": "python-4.9.0", "x-sliderule-service": "sliderule", "x-sliderule-timestamp": "1800000000",
        "x-sliderule-signature": "c2lnbmF0dXJl+/=",
    ]

    func assertNoForgedHeader(_ echoed: [String: String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(echoed["x-sliderule-account"], "alice", "\(echoed)", file: file, line: line)
        XCTAssertEqual(echoed["x-sliderule-org-roles"], "member", "\(echoed)", file: file, line: line)
        let others = echoed.keys.filter { $0.hasPrefix("x-sliderule-") }
        XCTAssertEqual(
            Set(others), Set(["x-sliderule-account", "x-sliderule-org-roles"] + Self.client.keys), "\(echoed)", file: file,
            line: line)
        for (name, value) in Self.client {
            XCTAssertEqual(echoed[name], value, "SlideRule's client header \(name) passes unchanged", file: file, line: line)
        }
    }

    func testHAProxyRemovesEveryClientMadeSlideRuleHeader() async throws {
        let broker = try RealGateway.broker("")
        defer { broker.cleanUp() }
        let (server, brokerPort) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }
        let stage = try HAProxyStage.prepare(broker, brokerPort: brokerPort)
        defer { stage.stop() }
        let (haproxy, port) = try stage.startHAProxy()
        defer { haproxy.stop() }
        let url = "http://127.0.0.1:\(port)/source/status"
        let token = try await RealGateway.accessToken(broker: brokerPort, org: "org1")

        let reply = try await RealGateway.get(url, token: token, headers: Self.forged.merging(Self.client) { $1 })
        XCTAssertEqual(reply.status, 200, "\(reply.text)\n\(haproxy.output)")
        assertNoForgedHeader(reply.echoed)
    }

    func testNginxWithTheSidecarReplacesTheIdentityAndRefusesOtherSlideRuleHeaders() async throws {
        let broker = try RealGateway.broker("")
        defer { broker.cleanUp() }
        let (server, brokerPort) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }
        let directory = try RealGateway.directory(broker, "nginx")
        let (echo, backendPort) = try RealGateway.startEcho(in: directory)
        defer { echo.stop() }
        let (gateway, gatewayPort) = try RealGateway.startForwardAuth(
            broker, brokerPort: brokerPort, cluster: "cluster1", in: directory)
        defer { gateway.stop() }
        let (nginx, port) = try RealGateway.startNginx(gatewayPort: gatewayPort, backendPort: backendPort, in: directory)
        defer { nginx.stop() }
        let url = "http://127.0.0.1:\(port)/source/status"
        let logs = { "\ngateway: \(gateway.output)\nnginx: \(nginx.output)" }
        let token = try await RealGateway.accessToken(broker: brokerPort, org: "org1")

        // The identity headers, which nginx replaces, and the client's own: passed on, replaced.
        let identity = Self.forged.filter { ["x-sliderule-account", "x-sliderule-org-roles"].contains($0.key.lowercased()) }
        let replaced = try await RealGateway.get(url, token: token, headers: identity.merging(Self.client) { $1 })
        XCTAssertEqual(replaced.status, 200, replaced.text + logs())
        assertNoForgedHeader(replaced.echoed)

        // Any other x-sliderule-* name nginx cannot remove: the sidecar refuses the request, so
        // the nodes never see it.
        for name in ["X-SlideRule-Roles", "x-sliderule-anything"] {
            let refused = try await RealGateway.get(url, token: token, headers: [name: "owner"].merging(Self.client) { $1 })
            XCTAssertEqual(refused.status, 403, "\(name): \(refused.text)" + logs())
            XCTAssertEqual(refused.echoed, [:], "nothing reached the backend")
        }
        let all = try await RealGateway.get(url, token: token, headers: Self.forged.merging(Self.client) { $1 })
        XCTAssertEqual(all.status, 403, all.text + logs())
        XCTAssertEqual(all.echoed, [:])
        XCTAssertTrue(gateway.output.contains("x-sliderule-anything"), "the refusal names the header in the log" + logs())
    }
}
