import BrokerCore
import BrokerCrypto
import BrokerGateway
import BrokerServer
import BrokerValidator
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ServiceLifecycle
import XCTest

/// The forward-auth gateway against a real broker on loopback: tokens from real logins, the
/// JWKS fetched over HTTP, and the broker stopped while the gateway keeps answering.
final class GatewayTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        harness = try await ServerHarness.make()
        try await harness.services.accounts.addMember(organization: "org2", username: "bob", role: .owner, by: .operator)
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    func testForwardAuthDecisionsAndTheCacheOutlivingTheBroker() async throws {
        let harness = self.harness!
        let broker = try await LiveServer.broker(harness)
        let alice = try await Self.login(port: broker.port, username: "alice", organization: "org1")
        let bob = try await Self.login(port: broker.port, username: "bob", organization: "org2")

        let gatewayLogs = CapturedLogs()
        var logger = Logger(label: "test.gateway") { _ in gatewayLogs.handler() }
        logger.logLevel = .trace
        let source = HTTPJWKSSource(url: "http://127.0.0.1:\(broker.port)/.well-known/jwks.json")
        let validator = GatewayApplication.validator(
            source: source, issuer: harness.services.configuration.issuer, leeway: 30,
            cache: JWKSCacheConfiguration(), logger: logger, clock: harness.clock)
        let gateway = GatewayApplication.make(
            validator: validator, cluster: "org1", host: "127.0.0.1", port: 0, logger: logger)
        do {
            try await gateway.withLiveClient { client in
                // A good token, on any path and any method: 200 with the identity headers.
                for (method, path) in [(HTTPRequest.Method.get, "/"), (.post, "/auth"), (.put, "/any/deep/path?x=1"), (.head, "/x")] {
                    try await client.execute(uri: path, method: method, headers: [.authorization: "Bearer \(alice)"]) { response in
                        XCTAssertEqual(response.status, .ok, "\(method) \(path)")
                        XCTAssertEqual(response.headers[HTTPField.Name("x-sliderule-account")!], "alice")
                        XCTAssertEqual(response.headers[HTTPField.Name("x-sliderule-org-roles")!], "member")
                        XCTAssertEqual(response.body.readableBytes, 0)
                    }
                }
                try await client.execute(uri: "/", method: .get, headers: [.authorization: "bearer \(alice)"]) { response in
                    XCTAssertEqual(response.status, .ok, "the scheme is case-insensitive")
                }
                // None, another scheme, garbage, a tampered token: 401 with a Bearer challenge.
                let unauthenticated: [HTTPFields] = [
                    [:], [.authorization: "Basic YWxpY2U6cHc="], [.authorization: "Bearer"],
                    [.authorization: "Bearer garbage"], [.authorization: "Bearer \(alice.dropLast(2))xx"],
                ]
                for headers in unauthenticated {
                    try await client.execute(uri: "/", method: .get, headers: headers) { response in
                        XCTAssertEqual(response.status, .unauthorized, "\(headers)")
                        // RFC 6750 section 3.1: no error code for a request without a bearer token
                        // (none, another scheme, an empty one); invalid_token for a bad one.
                        let presented = headers[.authorization].map { $0.hasPrefix("Bearer ") } ?? false
                        XCTAssertEqual(
                            response.headers[.wwwAuthenticate],
                            presented
                                ? #"Bearer realm="broker", error="invalid_token", error_description="invalid bearer token""#
                                : #"Bearer realm="broker""#, "\(headers)")
                        XCTAssertNil(response.headers[HTTPField.Name("x-sliderule-account")!])
                        XCTAssertLessThan(response.body.readableBytes, 64)
                    }
                }
                // Two Authorization headers: which one an upstream honours is unknowable.
                var twice = HTTPFields()
                twice.append(HTTPField(name: .authorization, value: "Bearer \(alice)"))
                twice.append(HTTPField(name: .authorization, value: "Bearer \(bob)"))
                try await client.execute(uri: "/", method: .get, headers: twice) { response in
                    XCTAssertEqual(response.status, .unauthorized)
                }
                // Bob's valid token is for org2's cluster: 403.
                try await client.execute(uri: "/", method: .get, headers: [.authorization: "Bearer \(bob)"]) { response in
                    XCTAssertEqual(response.status, .forbidden)
                    XCTAssertEqual(
                        response.headers[.wwwAuthenticate],
                        #"Bearer realm="broker", error="insufficient_scope", error_description="token is not for this cluster""#)
                    XCTAssertNil(response.headers[HTTPField.Name("x-sliderule-account")!])
                }

                // The broker goes away; the gateway answers from its cache.
                try await broker.stop()
                let stillServed = try? await Self.login(port: broker.port, username: "alice", organization: "org1")
                XCTAssertNil(stillServed, "the broker is really down")
                // Past the JWKS max-age (300 s): the refetch fails and the last good keys stay.
                harness.clock.advance(by: 301)
                try await client.execute(uri: "/", method: .get, headers: [.authorization: "Bearer \(alice)"]) { response in
                    XCTAssertEqual(response.status, .ok)
                    XCTAssertEqual(response.headers[HTTPField.Name("x-sliderule-account")!], "alice")
                }
                XCTAssertTrue(gatewayLogs.all.contains { $0.contains("JWKS fetch failed") }, "\(gatewayLogs.all)")
                try await client.execute(uri: "/", method: .get, headers: [.authorization: "Bearer \(bob)"]) { response in
                    XCTAssertEqual(response.status, .forbidden)
                }
            }
        } catch {
            try? await source.shutdown()
            try? await broker.stop()
            throw error
        }
        try await source.shutdown()
        for line in gatewayLogs.all {
            XCTAssertFalse(line.contains(alice) || line.contains(bob), "a token reached the log: \(line)")
            XCTAssertFalse(line.contains(String(alice.split(separator: ".")[2])), "a signature reached the log")
        }
        XCTAssertTrue(gatewayLogs.all.contains { $0.contains("JWKS loaded") }, "\(gatewayLogs.all)")
    }

    /// A token's second request is answered from the verified-token cache with exactly the
    /// answer its first request, which verified it, got: 200 with the same identity headers,
    /// or 403 for another cluster's token.
    func testACachedTokenGetsTheAnswerOfItsFirstVerification() async throws {
        let harness = self.harness!
        let broker = try await LiveServer.broker(harness)
        let source = HTTPJWKSSource(url: "http://127.0.0.1:\(broker.port)/.well-known/jwks.json")
        do {
            let alice = try await Self.login(port: broker.port, username: "alice", organization: "org1")
            let bob = try await Self.login(port: broker.port, username: "bob", organization: "org2")
            let validator = GatewayApplication.validator(
                source: source, issuer: harness.services.configuration.issuer, leeway: 30,
                cache: JWKSCacheConfiguration(), logger: Self.quietLogger, clock: harness.clock)
            let gateway = GatewayApplication.make(
                validator: validator, cluster: "org1", host: "127.0.0.1", port: 0, logger: Self.quietLogger)
            try await gateway.withLiveClient { client in
                for (token, status) in [(alice, HTTPResponse.Status.ok), (bob, .forbidden)] {
                    var answers: [Answer] = []
                    for _ in 0..<2 {
                        answers.append(try await client.execute(uri: "/", method: .get, headers: [.authorization: "Bearer \(token)"]) {
                            Answer($0)
                        })
                    }
                    XCTAssertEqual(answers[0].status, status)
                    XCTAssertEqual(answers[1], answers[0], "the hit's answer")
                }
                try await client.execute(uri: "/", method: .get, headers: [.authorization: "Bearer \(alice)"]) { response in
                    XCTAssertEqual(response.headers[HTTPField.Name("x-sliderule-account")!], "alice")
                    XCTAssertEqual(response.headers[HTTPField.Name("x-sliderule-org-roles")!], "member")
                }
            }
            let statistics = validator.verifiedTokens.statistics
            XCTAssertEqual(statistics.misses, 2, "one verification per token")
            XCTAssertEqual(statistics.hits, 3)
        } catch {
            try? await source.shutdown()
            try? await broker.stop()
            throw error
        }
        try await source.shutdown()
        try await broker.stop()
    }

    /// A response's status, headers but `Date`, and body.
    struct Answer: Equatable {
        var status: HTTPResponse.Status
        var headers: [String]
        var body: ByteBuffer

        init(_ response: LiveResponse) {
            status = response.status
            headers = response.headers.filter { $0.name != .date }.map { "\($0.name.canonicalName): \($0.value)" }
            body = response.body
        }
    }

    func testTheGatewayCommandServesForwardAuth() async throws {
        let harness = self.harness!
        let broker = try await LiveServer.broker(harness)
        do {
            let alice = try await Self.login(port: broker.port, username: "alice", organization: "org1")
            let (process, port) = try Self.startGatewayCommand([
                "gateway", "--jwks", "http://127.0.0.1:\(broker.port)/.well-known/jwks.json",
                "--issuer", harness.services.configuration.issuer, "--cluster", "org1", "--port", "0",
                "--refetch-interval", "5", "--leeway", "60",
            ])
            defer { process.terminate(); process.waitUntilExit() }
            try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                var response = try await client.execute(.init("/", method: .get, headers: [.authorization: "Bearer \(alice)"]))
                XCTAssertEqual(response.status, .ok)
                XCTAssertEqual(response.headers[HTTPField.Name("x-sliderule-account")!], "alice")
                response = try await client.execute(.init("/whatever", method: .get))
                XCTAssertEqual(response.status, .unauthorized)
            }
        } catch {
            try? await broker.stop()
            throw error
        }
        try await broker.stop()
    }

    func testTheGatewayCommandRefusesBadOptions() throws {
        let binary = try BrokerBinary.make()
        defer { binary.cleanUp() }
        let base = ["gateway", "--jwks", "http://127.0.0.1:1/.well-known/jwks.json", "--issuer", "http://x", "--cluster", "c1"]
        let refused = [
            ["--leeway", "301"], ["--refetch-interval", "0"], ["--port", "70000"], ["--token-cache-size", "-1"],
            ["--token-cache-size", "1000001"],
        ]
        for extra in refused {
            let result = try binary.run(base + extra)
            XCTAssertNotEqual(result.status, 0, "\(extra)")
        }
        XCTAssertNotEqual(try binary.run(["gateway", "--jwks", "file:///etc/passwd", "--issuer", "http://x", "--cluster", "c1"]).status, 0)
        XCTAssertNotEqual(try binary.run(["gateway", "--jwks", "http://127.0.0.1:1/", "--issuer", "http://x", "--cluster", "*"]).status, 0)
    }

    /// Stopping a server by cancellation makes Hummingbird log an error that is expected here.
    static var quietLogger: Logger {
        var logger = Logger(label: "test.broker")
        logger.logLevel = .critical
        return logger
    }

    /// A generation-1 login over HTTP; returns the access token.
    static func login(port: Int, username: String, organization: String) async throws -> String {
        try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
            let body = #"{"username":"\#(username)","password":"\#(ServerHarness.password)","org_name":"\#(organization)"}"#
            let response = try await client.execute(
                .init("/api/org_token/", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body)))
            guard response.status == .ok, let bytes = response.body,
                let object = try JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any],
                let access = object["access"] as? String
            else { throw LoginFailed(status: response.status.code) }
            return access
        }
    }

    struct LoginFailed: Error { var status: Int }

    /// Runs `broker gateway` and returns it once it prints the port it listens on.
    static func startGatewayCommand(_ arguments: [String]) throws -> (Process, Int) {
        try BrokerBinary.startListening(
            arguments, environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BROKER_") })
    }
}

/// An application served on a free loopback port in a task of its own, so that a test can
/// stop it while others keep running (HummingbirdTesting's live mode stops only at the end).
final class LiveServer: Sendable {
    let port: Int
    private let task: Task<Void, any Error>

    private init(port: Int, task: Task<Void, any Error>) {
        self.port = port
        self.task = task
    }

    static func start<App: Service>(
        _ make: (@escaping @Sendable (any Channel) async -> Void) -> App
    ) async throws -> LiveServer {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = make { channel in
            continuation.yield(channel.localAddress?.port ?? 0)
            continuation.finish()
        }
        let task = Task { try await app.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            throw CancellationError()
        }
        return LiveServer(port: port, task: task)
    }

    /// The broker of `harness`, serving its services on a free loopback port.
    static func broker(_ harness: ServerHarness) async throws -> LiveServer {
        try await start { onRunning in
            BrokerApplication.make(
                services: harness.services, host: "127.0.0.1", port: 0, logger: GatewayTests.quietLogger,
                onServerRunning: onRunning)
        }
    }

    /// Stops listening and waits until the server has closed.
    func stop() async throws {
        task.cancel()
        _ = await task.result
    }
}
