import BrokerCore
import BrokerServer
import FakeGitHub
import Foundation
import GitHubClient
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import XCTest

/// `GET /metrics` and request ids over a real loopback socket. The metrics registry is the
/// process's (``TestMetrics``), so every check is a difference between two scrapes.
final class MetricsHTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        // Before the harness: its key ring reports itself to the metrics system on creation.
        _ = TestMetrics.registry
        harness = try await ServerHarness.make()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    static let login = #"{"username":"alice","password":"correct horse battery staple","org_name":"org1"}"#
    static let wrongPassword = #"{"username":"alice","password":"not the password at all","org_name":"org1"}"#
    static let requestID = HTTPField.Name("X-Request-ID")!

    func testLoginsRefreshesAndReuseAreCountedWithTheirLabels() async throws {
        let harness = self.harness!
        try await harness.withMetrics { client in
            let before = try await client.scrape()
            let (status, login) = try await client.postJSON("/api/org_token/", Self.login)
            XCTAssertEqual(status, .ok)
            let (failed, _) = try await client.postJSON("/api/org_token/", Self.wrongPassword)
            XCTAssertEqual(failed, .unauthorized)
            let first = try XCTUnwrap(login["refresh"] as? String)
            let (rotated, _) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(first)"}"#)
            XCTAssertEqual(rotated, .ok)
            harness.clock.advance(by: 5)  // past the grace window: presenting it again is reuse
            let (reused, body) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(first)"}"#)
            XCTAssertEqual(reused, .unauthorized)
            XCTAssertEqual(body["error"] as? String, "refresh_token_reused")
            let after = try await client.scrape()

            XCTAssertEqual(after.delta(from: before, "broker_logins_total", ["method": "password", "outcome": "success"]), 1)
            XCTAssertEqual(after.delta(from: before, "broker_logins_total", ["method": "password", "outcome": "failure"]), 1)
            XCTAssertEqual(after.delta(from: before, "broker_tokens_issued_total", ["kind": "org"]), 2, "login and refresh")
            XCTAssertEqual(after.delta(from: before, "broker_refresh_total", ["outcome": "rotated"]), 1)
            XCTAssertEqual(after.delta(from: before, "broker_refresh_total", ["outcome": "reused"]), 1)
            XCTAssertEqual(after.delta(from: before, "broker_refresh_reuse_detected_total"), 1)
            XCTAssertFalse(after.text.contains("alice"), "no username ever becomes a label")
            XCTAssertFalse(after.text.contains(first), "no token ever becomes a label")
        }
    }

    func testThrottledLoginsAndSessionSignInsAreCounted() async throws {
        let harness = self.harness!
        try await harness.withMetrics { client in
            let before = try await client.scrape()
            let (session, _) = try await client.postJSON(
                "/api/session", #"{"username":"alice","password":"\#(ServerHarness.password)"}"#)
            XCTAssertEqual(session, .ok)
            for _ in 0..<6 { _ = try await client.postJSON("/api/org_token/", Self.wrongPassword) }
            let after = try await client.scrape()
            XCTAssertEqual(after.delta(from: before, "broker_logins_total", ["method": "session", "outcome": "success"]), 1)
            XCTAssertEqual(after.delta(from: before, "broker_tokens_issued_total", ["kind": "session"]), 1)
            XCTAssertEqual(after.delta(from: before, "broker_throttled_total", ["scope": "user_ip"]), 1)
            XCTAssertEqual(after.delta(from: before, "broker_logins_total", ["method": "password", "outcome": "throttled"]), 1)
        }
    }

    func testRequestsAreCountedByRouteTemplateNeverByPath() async throws {
        try await harness.withMetrics { client in
            let before = try await client.scrape()
            _ = try await client.postJSON("/api/org_token/", Self.login)
            _ = try await client.postJSON("/api/org_token/", Self.wrongPassword)
            for path in ["/nope/123", "/nope/456"] {
                let (status, _) = try await client.getJSON(path)
                XCTAssertEqual(status, .notFound)
            }
            let after = try await client.scrape()

            let route = "/api/org_token"
            XCTAssertEqual(
                after.delta(from: before, "broker_http_requests_total", ["route": route, "method": "POST", "status": "200"]), 1)
            XCTAssertEqual(
                after.delta(from: before, "broker_http_requests_total", ["route": route, "method": "POST", "status": "401"]), 1)
            XCTAssertEqual(
                after.delta(from: before, "broker_http_requests_total", ["route": "unmatched", "method": "GET", "status": "404"]), 2)
            XCTAssertFalse(after.text.contains("nope"), "a path no route matched never becomes a label")

            // The latency histogram: cumulative buckets up to +Inf, a count and a sum per route.
            let labels = ["route": route, "method": "POST"]
            XCTAssertEqual(after.delta(from: before, "broker_http_request_duration_seconds_count", labels), 2)
            XCTAssertEqual(
                after.delta(from: before, "broker_http_request_duration_seconds_bucket", labels.merging(["le": "+Inf"]) { $1 }), 2)
            XCTAssertGreaterThan(after.value("broker_http_request_duration_seconds_sum", labels), 0)
            let buckets = after.series("broker_http_request_duration_seconds_bucket")
                .filter { $0.labels["route"] == route && $0.labels["method"] == "POST" }
            XCTAssertGreaterThan(buckets.count, 3)
            XCTAssertEqual(buckets.map(\.value), buckets.map(\.value).sorted(), "buckets are cumulative")
        }
    }

    func testSigningKeysAreCountedByStateAndAlgorithm() async throws {
        try await harness.withMetrics { client in
            let scrape = try await client.scrape()
            // The harness's ring is the newest of the process: one active key, one published next.
            XCTAssertEqual(scrape.value("broker_signing_keys", ["state": "active", "alg": "RS256"]), 1)
            XCTAssertEqual(scrape.value("broker_signing_keys", ["state": "next", "alg": "RS256"]), 1)
            XCTAssertEqual(scrape.value("broker_signing_keys", ["state": "retired", "alg": "RS256"]), 0)
            XCTAssertEqual(scrape.series("broker_signing_keys").count, 12, "every state of every algorithm, zeros included")
        }
    }

    func testAWellFormedRequestIDIsEchoedAndLogged() async throws {
        let harness = self.harness!
        let id = "trace-42.a:b_C"
        try await harness.withMetrics { client in
            try await client.execute(
                uri: "/api/org_token/", method: .post, headers: [Self.requestID: id, .contentType: "application/json"],
                body: ByteBuffer(string: Self.login)
            ) { response in
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(response.headers[Self.requestID], id)
            }
        }
        let access = harness.logs.all.filter { $0.contains("POST /api/org_token/ 200") }
        XCTAssertEqual(access.count, 1, "\(harness.logs.all)")
        XCTAssertTrue(access[0].contains(#""request_id": \#(id)"#), access[0])
        XCTAssertTrue(access[0].contains(#""route": /api/org_token"#), access[0])
    }

    func testAMalformedRequestIDIsReplaced() async throws {
        let harness = self.harness!
        let malformed = [String(repeating: "a", count: 129), "two words", "<script>", "ünïcode", "a,b"]
        try await harness.withMetrics { client in
            for candidate in malformed {
                try await client.execute(uri: "/.well-known/jwks.json", method: .get, headers: [Self.requestID: candidate]) {
                    response in
                    let echoed = try XCTUnwrap(response.headers[Self.requestID])
                    XCTAssertNotEqual(echoed, candidate)
                    XCTAssertNotNil(echoed.wholeMatch(of: /[0-9a-f]{1,64}/), echoed)
                }
            }
            // The longest acceptable id is kept.
            let longest = String(repeating: "b", count: 128)
            try await client.execute(uri: "/.well-known/jwks.json", method: .get, headers: [Self.requestID: longest]) {
                XCTAssertEqual($0.headers[Self.requestID], longest)
            }
        }
        for line in harness.logs.all {
            XCTAssertFalse(line.contains("two words") || line.contains("<script>"), line)
        }
    }

    func testErrorAnswersCarryTheRequestIDToo() async throws {
        let harness = self.harness!
        try await harness.withMetrics { client in
            for (path, method, body, expected) in [
                ("/nope/123", HTTPRequest.Method.get, "", HTTPResponse.Status.notFound),
                ("/api/org_token/", .post, Self.wrongPassword, .unauthorized),
                ("/api/org_token/", .post, "{not json", .badRequest),
            ] {
                let id = "err-\(expected.code)"
                try await client.execute(
                    uri: path, method: method, headers: [Self.requestID: id, .contentType: "application/json"],
                    body: ByteBuffer(string: body)
                ) { response in
                    XCTAssertEqual(response.status, expected)
                    XCTAssertEqual(response.headers[Self.requestID], id, path)
                }
            }
            // Without one, a generated id still comes back.
            try await client.execute(uri: "/nope", method: .get) { response in
                XCTAssertNotNil(response.headers[Self.requestID])
            }
        }
        XCTAssertTrue(harness.logs.all.contains { $0.contains("GET /nope/123 404") && $0.contains(#""request_id": err-404"#) })
    }
}

/// GitHub call latency and errors, with the libcurl client talking to a fake GitHub on loopback.
final class GitHubMetricsHTTPTests: XCTestCase {
    var github: FakeGitHub!
    var harness: ServerHarness!

    override func setUp() async throws {
        _ = TestMetrics.registry
        let (github, client, clock) = try await FakeGitHub.startWithClient()
        self.github = github
        harness = try await ServerHarness.make(githubAPI: client, clock: clock) { configuration in
            configuration.githubOrganizations = [
                GitHubOrganizationMapping(organization: "sliderule", githubOrganization: "SlideRuleEarth", teams: [:])
            ]
            configuration.homeOrganization = "sliderule"
        }
        github.addUser(login: "carol", id: 30, token: "ghp_carol", organizations: ["SlideRuleEarth": .admin])
    }

    override func tearDown() async throws {
        try await harness.shutdown()
        await github.stop()
    }

    func testGitHubCallsAreTimedAndTheirFailuresCounted() async throws {
        try await harness.withMetrics { client in
            let before = try await client.scrape()
            var (status, _) = try await client.postJSON("/auth/github/pat", #"{"pat":"ghp_carol"}"#)
            XCTAssertEqual(status, .ok)
            (status, _) = try await client.postJSON("/auth/github/pat", #"{"pat":"ghp_revoked"}"#)
            XCTAssertEqual(status, .unauthorized)
            let after = try await client.scrape()

            let duration = "broker_github_request_duration_seconds_count"
            XCTAssertEqual(after.delta(from: before, duration, ["call": "user"]), 2)
            XCTAssertEqual(after.delta(from: before, duration, ["call": "org_membership"]), 1)
            XCTAssertEqual(after.delta(from: before, "broker_github_errors_total", ["kind": "unauthorized"]), 1)
            XCTAssertEqual(after.delta(from: before, "broker_logins_total", ["method": "github_pat", "outcome": "success"]), 1)
            XCTAssertEqual(after.delta(from: before, "broker_logins_total", ["method": "github_pat", "outcome": "failure"]), 1)
            XCTAssertEqual(after.delta(from: before, "broker_tokens_issued_total", ["kind": "generation2"]), 1)
            XCTAssertFalse(after.text.contains("carol") || after.text.contains("ghp_"), "no login or token as a label")
        }
    }
}

/// `broker serve` with `metrics_port`: /metrics moves to a listener of its own, off the public one.
final class MetricsListenerProcessTests: XCTestCase {
    func testMetricsPortMovesMetricsOffThePublicListener() async throws {
        let binary = try BrokerBinary.make(extraConfig: "metrics_port: 0\nmetrics_host: \"127.0.0.1\"")
        defer { binary.cleanUp() }
        let (process, ports) = try Self.serve(binary)
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        XCTAssertNotEqual(ports.public, ports.metrics)
        try await TestClient.withClient(host: "127.0.0.1", port: ports.public) { client in
            // A login, so that the scrape below has something of the public listener's to show.
            let login = #"{"username":"nobody","password":"not a password at all","org_name":"org1"}"#
            let answer = try await client.execute(
                .init("/api/org_token/", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: login)))
            XCTAssertEqual(answer.status, .unauthorized)
            let response = try await client.execute(.init("/metrics", method: .get))
            XCTAssertEqual(response.status, .notFound, "the public listener still serves /metrics")
        }
        try await TestClient.withClient(host: "127.0.0.1", port: ports.metrics) { client in
            let response = try await client.execute(.init("/metrics", method: .get))
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(response.headers[.contentType], "text/plain; version=0.0.4; charset=utf-8")
            let text = response.body.map { String(buffer: $0) } ?? ""
            XCTAssertEqual(MetricsScrape(text).value("broker_logins_total", ["method": "password", "outcome": "failure"]), 1, text)
            // Only /metrics is served there.
            for path in ["/", "/.well-known/jwks.json", "/api/org_token/"] {
                let status = try await client.execute(.init(path, method: .get)).status
                XCTAssertEqual(status, .notFound, path)
            }
        }
    }

    /// Starts `broker serve` and returns it with the ports of its two listeners, read from the
    /// lines it prints.
    static func serve(_ binary: BrokerBinary) throws -> (Process, (public: Int, metrics: Int)) {
        let process = Process()
        process.executableURL = try BrokerBinary.executable
        process.arguments = ["serve", "--port", "0"]
        process.environment = binary.environment
        process.currentDirectoryURL = binary.workDirectory
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        var seen = ""
        let deadline = Date().addingTimeInterval(60)
        func port(after prefix: String) -> Int? {
            guard let range = seen.range(of: prefix + #"http://127\.0\.0\.1:\d+"#, options: .regularExpression) else { return nil }
            return Int(seen[range].split(separator: ":").last!)
        }
        while Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
            if let listening = port(after: "listening on "), let metrics = port(after: "metrics served on ") {
                return (process, (listening, metrics))
            }
        }
        process.terminate()
        throw BrokerBinary.ServeFailed(output: seen)
    }
}

extension ServerHarness {
    /// Like ``withClient(_:)``, with `GET /metrics` served from the process's registry.
    func withMetrics<Value: Sendable>(_ body: @Sendable (any TestClientProtocol) async throws -> Value) async throws -> Value {
        let logs = self.logs
        let logger = Logger(label: "test.http") { _ in logs.handler() }
        let app = BrokerApplication.make(
            services: services, host: "127.0.0.1", port: 0, logger: logger, metrics: TestMetrics.registry)
        return try await app.test(.live) { client in try await body(client) }
    }
}

extension TestClientProtocol {
    /// `GET /metrics`, checked for Prometheus's text content type, parsed.
    func scrape() async throws -> MetricsScrape {
        try await execute(uri: "/metrics", method: .get) { response in
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(response.headers[.contentType], "text/plain; version=0.0.4; charset=utf-8")
            return MetricsScrape(String(buffer: response.body))
        }
    }
}
