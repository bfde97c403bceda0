import BrokerCore
import BrokerGateway
import BrokerServer
import BrokerValidator
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import XCTest

/// Requests whose HTTP framing is broken, sent as raw bytes over a real loopback socket: each is
/// the client's error (400, or 501 for a transfer coding the broker does not implement) in the
/// route family's error shape, logged at debug only, and never a 5xx in the metrics.
final class FramingHTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        _ = TestMetrics.registry
        harness = try await ServerHarness.make()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    static let login = #"{"username":"alice","password":"correct horse battery staple","org_name":"org1"}"#

    /// A request head for `path`; `headers` are whole lines.
    static func head(_ path: String, _ headers: [String]) -> String {
        (["POST \(path) HTTP/1.1", "Host: 127.0.0.1"] + headers).joined(separator: "\r\n") + "\r\n\r\n"
    }

    static func chunked(_ body: String) -> String {
        String(body.utf8.count, radix: 16) + "\r\n" + body + "\r\n0\r\n\r\n"
    }

    enum Shape { case generation1, generation2, oauth }

    struct Case {
        var name: String
        var path: String
        var route: String
        var request: String
        var status: Int
        var code: String
        var shape: Shape
    }

    static var cases: [Case] {
        let json = "Content-Type: application/json"
        let form = "Content-Type: application/x-www-form-urlencoded"
        return [
            Case(
                name: "unknown transfer coding", path: "/api/org_token/", route: "/api/org_token",
                request: head("/api/org_token/", [json, "Transfer-Encoding: xchunked"]) + chunked(login),
                status: 400, code: "invalid_framing", shape: .generation1),
            Case(
                name: "chunk size zz", path: "/api/org_token/", route: "/api/org_token",
                request: head("/api/org_token/", [json, "Transfer-Encoding: chunked"]) + "zz\r\n" + login + "\r\n0\r\n\r\n",
                status: 400, code: "invalid_framing", shape: .generation1),
            Case(
                name: "body shorter than Content-Length", path: "/api/org_token/", route: "/api/org_token",
                request: head("/api/org_token/", [json, "Content-Length: 500"]) + login,
                status: 400, code: "invalid_framing", shape: .generation1),
            Case(
                name: "chunked after an unimplemented coding", path: "/api/org_token/", route: "/api/org_token",
                request: head("/api/org_token/", [json, "Transfer-Encoding: gzip, chunked"]) + chunked(login),
                status: 501, code: "unsupported_transfer_coding", shape: .generation1),
            Case(
                name: "generation 2, chunk size zz", path: "/auth/github/pat", route: "/auth/github/pat",
                request: head("/auth/github/pat", [json, "Transfer-Encoding: chunked"]) + "zz\r\n{}\r\n0\r\n\r\n",
                status: 400, code: "invalid_framing", shape: .generation2),
            Case(
                name: "generation 2, unknown transfer coding", path: "/auth/github/pat", route: "/auth/github/pat",
                request: head("/auth/github/pat", [json, "Transfer-Encoding: xchunked"]) + chunked(#"{"pat":"x"}"#),
                status: 400, code: "invalid_framing", shape: .generation2),
            Case(
                name: "OAuth, chunk size zz", path: "/oauth/token", route: "/oauth/token",
                request: head("/oauth/token", [form, "Transfer-Encoding: chunked"]) + "zz\r\ngrant_type=x\r\n0\r\n\r\n",
                status: 400, code: "invalid_request", shape: .oauth),
            Case(
                name: "OAuth, body shorter than Content-Length", path: "/oauth/token", route: "/oauth/token",
                request: head("/oauth/token", [form, "Content-Length: 300"]) + "grant_type=refresh_token",
                status: 400, code: "invalid_request", shape: .oauth),
        ]
    }

    func testMalformedFramingIsTheClientsErrorInTheRoutesShape() async throws {
        let harness = self.harness!
        try await harness.withMetrics { client in
            let port = try XCTUnwrap(client.port)
            let contract = try OpenAPIContract.load()
            let before = try await client.scrape()
            for framing in Self.cases {
                let bytes = try await RawHTTPClient.exchange(port: port, framing.request)
                guard let answer = RawHTTPClient.Response(bytes) else {
                    XCTFail("\(framing.name): no HTTP answer: \(String(decoding: bytes, as: UTF8.self))")
                    continue
                }
                var headers = HTTPFields()
                for (name, value) in answer.headers { headers[HTTPField.Name(name)!] = value }
                let live = LiveAnswer(
                    method: .post, uri: framing.path, status: .init(code: answer.status), headers: headers, body: answer.body)
                XCTAssertEqual(contract.violations(of: live), [], "\(framing.name): as openapi.yaml declares")
                XCTAssertEqual(answer.status, framing.status, "\(framing.name): \(String(decoding: bytes, as: UTF8.self))")
                XCTAssertEqual(answer.headers["content-type"], "application/json", framing.name)
                XCTAssertEqual(answer.responseCount, 1, "\(framing.name): one answer, nothing after it")
                let body = answer.json
                switch framing.shape {
                case .generation1:
                    XCTAssertEqual(body["error"] as? String, framing.code, framing.name)
                    XCTAssertNotNil(body["detail"] as? String, framing.name)
                case .generation2:
                    XCTAssertEqual(body["status"] as? String, "error", framing.name)
                    XCTAssertEqual(body["error"] as? String, framing.code, framing.name)
                case .oauth:
                    XCTAssertEqual(body["error"] as? String, framing.code, framing.name)
                    XCTAssertNotNil(body["error_description"] as? String, framing.name)
                }
            }
            let after = try await client.scrape()
            for route in Set(Self.cases.map(\.route)) {
                let labels = ["route": route, "method": "POST"]
                let expected400 = Self.cases.filter { $0.route == route && $0.status == 400 }.count
                XCTAssertEqual(after.delta(from: before, "broker_http_requests_total", labels.merging(["status": "400"]) { $1 }),
                               Double(expected400), route)
                XCTAssertEqual(after.delta(from: before, "broker_http_requests_total", labels.merging(["status": "500"]) { $1 }),
                               0, "\(route): no 500")
            }
        }
        let logs = harness.logs.all
        XCTAssertEqual(logs.filter { $0.hasPrefix("error ") || $0.hasPrefix("critical ") }, [], "nothing above debug for the client's error")
        XCTAssertFalse(logs.filter { $0.hasPrefix("debug malformed request") }.isEmpty, "\(logs)")
    }

    /// A client that promises a body and closes the connection before sending it: nobody is left
    /// to answer, but the broker neither logs an error nor counts a 5xx.
    func testAClientThatClosesBeforeItsBodyIsNeitherAnErrorNorA5xx() async throws {
        let harness = self.harness!
        try await harness.withMetrics { client in
            let port = try XCTUnwrap(client.port)
            let labels = ["route": "/api/org_token", "method": "POST"]
            let before = try await client.scrape()
            for _ in 0..<3 {
                _ = try await RawHTTPClient.exchange(
                    port: port, Self.head("/api/org_token/", ["Content-Type: application/json", "Content-Length: 500"]) + "{\"user",
                    ending: .close)
            }
            // The requests end on the server after the client is gone: wait (bounded) until all three are counted.
            var after = try await client.scrape()
            let deadline = ContinuousClock.now + .seconds(10)
            while Self.requests(after, "/api/org_token") - Self.requests(before, "/api/org_token") < 3, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                after = try await client.scrape()
            }
            XCTAssertEqual(after.delta(from: before, "broker_http_requests_total", labels.merging(["status": "400"]) { $1 }), 3)
            XCTAssertEqual(after.delta(from: before, "broker_http_requests_total", labels.merging(["status": "500"]) { $1 }), 0)
        }
        XCTAssertEqual(harness.logs.all.filter { $0.hasPrefix("error ") || $0.hasPrefix("critical ") }, [])
    }

    /// Every request counted for `route`, whatever its method and status.
    static func requests(_ scrape: MetricsScrape, _ route: String) -> Double {
        let counts: [Double] = scrape.series("broker_http_requests_total").filter { $0.labels["route"] == route }.map(\.value)
        return counts.reduce(0, +)
    }

    /// The connection stays usable for the next request after a refused transfer coding whose
    /// chunked framing was sound.
    func testTheConnectionOutlivesAnUnimplementedTransferCoding() async throws {
        try await harness.withClient { client in
            let port = try XCTUnwrap(client.port)
            let request = Self.head("/api/org_token/", ["Content-Type: application/json", "Transfer-Encoding: gzip, chunked"])
                + Self.chunked(Self.login)
                + Self.head("/api/org_token/", ["Content-Type: application/json", "Content-Length: \(Self.login.utf8.count)"])
                + Self.login
            let bytes = try await RawHTTPClient.exchange(port: port, request)
            let text = String(decoding: bytes, as: UTF8.self)
            XCTAssertTrue(text.hasPrefix("HTTP/1.1 501"), text)
            XCTAssertTrue(text.contains("HTTP/1.1 200"), text)
        }
    }

    /// `broker gateway` decided on the headers of a broken message and then let the HTTP server
    /// write its own 400 behind the decision, on the same connection: now one answer, 400.
    func testTheGatewayAnswersABrokenMessageOnceWith400() async throws {
        let logs = CapturedLogs()
        var logger = Logger(label: "test.gateway") { _ in logs.handler() }
        logger.logLevel = .trace
        // No request here carries a token: the JWKS is never fetched.
        let source = HTTPJWKSSource(url: "http://127.0.0.1:1/.well-known/jwks.json")
        let validator = GatewayApplication.validator(
            source: source, issuer: "http://127.0.0.1", leeway: 30, cache: JWKSCacheConfiguration(), logger: logger)
        let gateway = GatewayApplication.make(validator: validator, cluster: "org1", host: "127.0.0.1", port: 0, logger: logger)
        do {
            try await gateway.withLiveClient { client in
                let port = try XCTUnwrap(client.port)
                let head = "POST /auth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                let broken = [
                    "unknown transfer coding": head + "Transfer-Encoding: xchunked\r\n\r\n" + Self.chunked("{}"),
                    "chunk size zz": head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
                    "body shorter than Content-Length": head + "Content-Length: 100\r\n\r\n{}",
                ]
                for (name, request) in broken {
                    let bytes = try await RawHTTPClient.exchange(port: port, request)
                    let answer = try XCTUnwrap(RawHTTPClient.Response(bytes), name)
                    XCTAssertEqual(answer.status, 400, "\(name): \(String(decoding: bytes, as: UTF8.self))")
                    XCTAssertEqual(answer.responseCount, 1, "\(name): no decision before the 400")
                }
                // A sound body is read and dropped: the decision is as before.
                let sound = try await RawHTTPClient.exchange(port: port, head + "Content-Length: 2\r\n\r\n{}")
                XCTAssertEqual(RawHTTPClient.Response(sound)?.status, 401)
            }
        } catch {
            try await source.shutdown()
            throw error
        }
        try await source.shutdown()
        XCTAssertEqual(logs.all.filter { $0.hasPrefix("error ") || $0.hasPrefix("critical ") }, [])
    }
}
