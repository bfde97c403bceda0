import BrokerCore
import BrokerGateway
import BrokerServer
import BrokerValidator
import Foundation
import Hummingbird
import Prometheus
import XCTest

/// `HEAD` is `GET` without the body (RFC 9110 section 9.3.2), on every GET route of the broker
/// and on `broker gateway`: the same status and headers, and not one byte after the head, which
/// a client would otherwise read as the start of the next answer on the connection.
final class HeadHTTPTests: XCTestCase {
    /// The answer's bytes on a raw connection, and the answer parsed.
    static func exchange(port: Int, _ method: String, _ path: String, headers: [String: String] = [:]) async throws
        -> (RawHTTPClient.Response, [UInt8])
    {
        let lines = headers.map { "\($0.key): \($0.value)\r\n" }.joined()
        let bytes = try await RawHTTPClient.exchange(
            port: port, "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(lines)Connection: close\r\n\r\n")
        let response = try XCTUnwrap(RawHTTPClient.Response(bytes), String(decoding: bytes, as: UTF8.self))
        return (response, bytes)
    }

    /// HEAD answers as GET did, without a body; returns the status.
    @discardableResult
    static func assertHeadIsGetWithoutBody(
        port: Int, _ path: String, headers: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line
    ) async throws -> Int {
        let (get, _) = try await exchange(port: port, "GET", path, headers: headers)
        let (head, bytes) = try await exchange(port: port, "HEAD", path, headers: headers)
        XCTAssertEqual(head.status, get.status, path, file: file, line: line)
        // Per answer: when it was made and the request's id.
        let varying: Set<String> = ["date", "x-request-id"]
        XCTAssertEqual(
            head.headers.filter { !varying.contains($0.key) }, get.headers.filter { !varying.contains($0.key) }, path,
            file: file, line: line)
        if get.status != 304 {
            XCTAssertEqual(head.headers["content-length"], "\(get.body.count)", "the GET answer's length: \(path)", file: file, line: line)
        }
        let text = String(decoding: bytes, as: UTF8.self)
        XCTAssertTrue(text.hasSuffix("\r\n\r\n") && text.components(separatedBy: "\r\n\r\n").count == 2,
                      "nothing after the head: \(path): \(text)", file: file, line: line)
        return head.status
    }

    func testEveryGetRouteAnswersHeadAsGetWithoutTheBody() async throws {
        let harness = try await ServerHarness.withAdmin()
        let broker = try await LiveServer.broker(harness)
        do {
            let port = broker.port
            let (jwks, _) = try await Self.exchange(port: port, "GET", "/.well-known/jwks.json")
            let etag = try XCTUnwrap(jwks.headers["etag"])
            XCTAssertNotNil(jwks.headers["cache-control"])
            for path in ["/.well-known/jwks.json", "/auth/pem", "/.well-known/openid-configuration", "/healthz", "/openapi.yaml"] {
                let status = try await Self.assertHeadIsGetWithoutBody(port: port, path)
                XCTAssertEqual(status, 200, path)
            }
            let kid = try XCTUnwrap(harness.services.keyRing.snapshot.keys.first?.metadata.kid)
            try await Self.assertHeadIsGetWithoutBody(port: port, "/auth/pem?kid=\(kid)")
            let notModified = try await Self.assertHeadIsGetWithoutBody(
                port: port, "/.well-known/jwks.json", headers: ["If-None-Match": etag])
            XCTAssertEqual(notModified, 304)

            // A protected GET: the same status as GET with and without a token, and for a
            // token without the right.
            let root = try await Self.sessionToken(port: port, "root")
            let alice = try await Self.sessionToken(port: port, "alice")
            var statuses: [Int] = []
            for headers in [[:], ["Authorization": "Bearer \(root)"], ["Authorization": "Bearer \(alice)"], ["Authorization": "Bearer nonsense"]] {
                statuses.append(try await Self.assertHeadIsGetWithoutBody(port: port, "/api/admin/users", headers: headers))
            }
            XCTAssertEqual(statuses, [401, 200, 403, 401])

            // Errors too: an unknown path, and a POST-only one (405, whose Allow has no HEAD);
            // a GET route's Allow names HEAD.
            let (missing, missingBytes) = try await Self.exchange(port: port, "HEAD", "/nowhere")
            XCTAssertEqual(missing.status, 404)
            XCTAssertTrue(String(decoding: missingBytes, as: UTF8.self).hasSuffix("\r\n\r\n"))
            let (postOnly, postOnlyBytes) = try await Self.exchange(port: port, "HEAD", "/api/org_token/")
            XCTAssertEqual(postOnly.status, 405)
            XCTAssertEqual(postOnly.headers["allow"], "POST")
            XCTAssertTrue(String(decoding: postOnlyBytes, as: UTF8.self).hasSuffix("\r\n\r\n"))
            let (trace, _) = try await Self.exchange(port: port, "TRACE", "/healthz")
            XCTAssertEqual(trace.status, 405)
            XCTAssertEqual(trace.headers["allow"], "GET, HEAD")
        } catch {
            try? await broker.stop()
            try? await harness.shutdown()
            throw error
        }
        try await broker.stop()
        try await harness.shutdown()
    }

    func testTheMetricsListenerAnswersHeadToo() async throws {
        let registry = PrometheusCollectorRegistry()
        registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "head_test_total", unitName: "", helpText: "a HEAD test")).increment()
        let metrics = try await LiveServer.start { onRunning in
            BrokerApplication.makeMetrics(
                registry: registry, host: "127.0.0.1", port: 0, logger: GatewayTests.quietLogger, onServerRunning: onRunning)
        }
        do {
            let status = try await Self.assertHeadIsGetWithoutBody(port: metrics.port, "/metrics")
            XCTAssertEqual(status, 200)
        } catch {
            try? await metrics.stop()
            throw error
        }
        try await metrics.stop()
    }

    func testTheSidecarAnswersHeadWithoutABody() async throws {
        let harness = try await ServerHarness.make()
        let broker = try await LiveServer.broker(harness)
        let source = HTTPJWKSSource(url: "http://127.0.0.1:\(broker.port)/.well-known/jwks.json")
        do {
            let alice = try await GatewayTests.login(port: broker.port, username: "alice", organization: "org1")
            let validator = GatewayApplication.validator(
                source: source, issuer: harness.services.configuration.issuer, leeway: 30,
                cache: JWKSCacheConfiguration(), logger: GatewayTests.quietLogger, clock: harness.clock)
            let gateway = try await LiveServer.start { onRunning in
                GatewayApplication.make(
                    validator: validator, cluster: "org1", host: "127.0.0.1", port: 0, logger: GatewayTests.quietLogger,
                    onServerRunning: onRunning)
            }
            do {
                var statuses: [Int] = []
                for headers in [[:], ["Authorization": "Bearer \(alice)"], ["Authorization": "Bearer nonsense"], ["x-sliderule-anything": "x"]] {
                    statuses.append(try await Self.assertHeadIsGetWithoutBody(port: gateway.port, "/any/path", headers: headers))
                }
                XCTAssertEqual(statuses, [401, 200, 401, 403])
            } catch {
                try? await gateway.stop()
                throw error
            }
            try await gateway.stop()
        } catch {
            try? await source.shutdown()
            try? await broker.stop()
            try? await harness.shutdown()
            throw error
        }
        try await source.shutdown()
        try await broker.stop()
        try await harness.shutdown()
    }

    static func sessionToken(port: Int, _ username: String) async throws -> String {
        let body = #"{"username":"\#(username)","password":"\#(ServerHarness.password)"}"#
        let bytes = try await RawHTTPClient.exchange(
            port: port,
            "POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        let response = try XCTUnwrap(RawHTTPClient.Response(bytes))
        return try XCTUnwrap(response.json["token"] as? String, "\(response.status) \(response.json)")
    }
}
