import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The real `broker serve` and `broker gateway`, under a low descriptor limit, against clients
/// that open connections and send nothing, or half a request: past the caps, other clients are
/// still answered at once; half-sent requests and idle connections are closed on time; one
/// address cannot hold more than its share.
final class ConnectionLimitsProcessTests: XCTestCase {
    /// Low enough that the clients below could exhaust the process's descriptors.
    static let descriptorLimit = 128
    /// More idle connections than the process could hold at `descriptorLimit`.
    static let idleConnections = 150
    /// The client addresses of the idle connections (all loopback on Linux), so that no single
    /// one passes the default per-address cap (a quarter of 64 at 128 descriptors).
    static let idleAddresses = (2...11).map { "127.0.0.\($0)" }

    // MARK: broker serve

    func testServePastTheCapClosesTheLongestIdleAndStillAnswersHealthzPromptly() throws {
        let server = try Server.broker(config: "")
        defer { server.stop() }
        try Self.assertIdleFloodDoesNotStarveOthers(port: server.port, path: "/healthz", expecting: 200)
    }

    func testServeClosesHalfSentRequestsAndIdleConnectionsAfterTheirTimeouts() throws {
        let server = try Server.broker(config: "http_header_timeout: 1\nhttp_body_timeout: 1\nhttp_idle_timeout: 1")
        defer { server.stop() }
        try Self.assertTimeouts(port: server.port, path: "/healthz", post: "/api/org_token/")
    }

    func testServeRefusesConnectionsPastThePerAddressCapButNotFromTrustedProxies() throws {
        let server = try Server.broker(
            config: "max_connections: 40\nmax_connections_per_address: 4\ntrusted_proxies: \"127.0.0.3\"")
        defer { server.stop() }
        try Self.assertPerAddressCap(port: server.port, path: "/healthz", expecting: 200)
        // A trusted proxy speaks for many clients: only the total caps it.
        let proxied = try (0..<8).map { _ in try LoopbackConnection(port: server.port, from: "127.0.0.3") }
        for connection in proxied {
            XCTAssertEqual(connection.status(of: Self.get("/healthz"), within: 3), 200)
        }
    }

    func testIdleConnectionsToTheMetricsListenerStarveNeitherListener() throws {
        let server = try Server.broker(config: "metrics_port: 0")
        defer { server.stop() }
        let metricsPort = try XCTUnwrap(server.metricsPort)
        var idle: [LoopbackConnection] = []
        for index in 0..<Self.idleConnections {
            idle.append(try LoopbackConnection(port: metricsPort, from: Self.idleAddresses[index % Self.idleAddresses.count]))
        }
        XCTAssertEqual(try LoopbackConnection(port: server.port).status(of: Self.get("/healthz"), within: 2), 200)
        XCTAssertEqual(try LoopbackConnection(port: metricsPort).status(of: Self.get("/metrics"), within: 2), 200)
        XCTAssertTrue(idle[0].waitForClose(within: 2), "the longest-idle metrics connection was closed to make room")
    }

    // MARK: broker gateway

    func testGatewayPastTheCapClosesTheLongestIdleAndStillAnswersPromptly() throws {
        let server = try Server.gateway([])
        defer { server.stop() }
        // No token: 401, from the gateway itself.
        try Self.assertIdleFloodDoesNotStarveOthers(port: server.port, path: "/auth", expecting: 401)
    }

    func testGatewayClosesHalfSentRequestsAndIdleConnectionsAfterTheirTimeouts() throws {
        let server = try Server.gateway(["--header-timeout", "1", "--body-timeout", "1", "--idle-timeout", "1"])
        defer { server.stop() }
        try Self.assertTimeouts(port: server.port, path: "/auth", post: "/auth")
    }

    func testGatewayRefusesConnectionsPastThePerAddressCap() throws {
        let server = try Server.gateway(["--max-connections", "40", "--max-connections-per-address", "4"])
        defer { server.stop() }
        try Self.assertPerAddressCap(port: server.port, path: "/auth", expecting: 401)
    }

    // MARK: the scenarios, for either server

    static func get(_ path: String) -> String {
        "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    }

    /// 150 connections that send nothing, then a request on a new one: answered within 2 s;
    /// the first idle connections were closed to make room, the last ones are still open.
    static func assertIdleFloodDoesNotStarveOthers(port: Int, path: String, expecting status: Int) throws {
        var idle: [LoopbackConnection] = []
        for index in 0..<idleConnections {
            idle.append(try LoopbackConnection(port: port, from: idleAddresses[index % idleAddresses.count]))
        }
        let started = ContinuousClock.now
        let answer = try LoopbackConnection(port: port).status(of: get(path), within: 2)
        XCTAssertEqual(answer, status, "a new client was not answered within 2 s of \(idleConnections) idle connections")
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(2))
        XCTAssertTrue(idle[0].waitForClose(within: 2), "the longest-idle connection was closed to make room")
        XCTAssertFalse(idle[idleConnections - 1].waitForClose(within: 0.2), "the newest idle connection is still open")
        // And the server still serves the survivors.
        XCTAssertEqual(idle[idleConnections - 1].status(of: get(path), within: 2), status)
    }

    /// With 1-second timeouts: a connection that sends nothing, a head trickled byte by byte, a
    /// body promised and not sent, and a connection kept alive after an answer, are all closed
    /// after about a second, and not before.
    static func assertTimeouts(port: Int, path: String, post: String) throws {
        let started = ContinuousClock.now
        let silent = try LoopbackConnection(port: port)
        let trickling = try LoopbackConnection(port: port)
        try trickling.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        let promising = try LoopbackConnection(port: port)
        try promising.send(
            "POST \(post) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        let keptAlive = try LoopbackConnection(port: port)
        XCTAssertNotNil(keptAlive.status(of: get(path), within: 2))
        let answered = ContinuousClock.now

        // A byte every 250 ms: activity, but the head never ends. The deadline does not move.
        var trickled = 0
        while !trickling.waitForClose(within: 0.25), ContinuousClock.now - started < .seconds(5) {
            try? trickling.send("X")
            trickled += 1
        }
        let trickleClosed = ContinuousClock.now - started
        XCTAssertLessThan(trickleClosed, .seconds(3), "a trickled head was closed by the header timeout")
        XCTAssertGreaterThanOrEqual(trickled, 2)
        for (name, connection) in [("silent", silent), ("body promised", promising), ("kept alive", keptAlive)] {
            XCTAssertTrue(connection.waitForClose(within: 4), "\(name): still open after the timeout")
        }
        let closedAll = ContinuousClock.now - started
        XCTAssertLessThan(closedAll, .seconds(5))
        XCTAssertGreaterThan(ContinuousClock.now - answered, .milliseconds(800), "the kept-alive connection had its idle time")
    }

    /// Four connections from one address are kept; a fifth is closed at once; the first four
    /// and other addresses are still answered.
    static func assertPerAddressCap(port: Int, path: String, expecting status: Int) throws {
        let kept = try (0..<4).map { _ in try LoopbackConnection(port: port, from: "127.0.0.2") }
        XCTAssertFalse(kept[3].waitForClose(within: 0.2))
        let extra = try LoopbackConnection(port: port, from: "127.0.0.2")
        XCTAssertTrue(extra.waitForClose(within: 1), "a connection past the per-address cap is closed at once")
        XCTAssertEqual(try LoopbackConnection(port: port, from: "127.0.0.1").status(of: get(path), within: 2), status)
        for connection in kept {
            XCTAssertEqual(connection.status(of: get(path), within: 2), status)
        }
    }

    // MARK: processes

    /// `broker serve` or `broker gateway`, started through `sh` under `ulimit -n`.
    struct Server {
        let process: Process
        let port: Int
        /// The metrics listener's, when `metrics_port` is set.
        var metricsPort: Int?
        var cleanUp: () -> Void = {}

        static func broker(config: String) throws -> Server {
            let broker = try BrokerBinary.make(extraConfig: config)
            do {
                var server = try start(["serve", "--port", "0"], environment: broker.environment, directory: broker.workDirectory)
                server.cleanUp = { broker.cleanUp() }
                return server
            } catch {
                broker.cleanUp()
                throw error
            }
        }

        static func gateway(_ flags: [String]) throws -> Server {
            // Nothing listens at the JWKS URL: the gateway starts anyway and answers 401.
            let jwks = "http://127.0.0.1:\(try RealGateway.freePort())/.well-known/jwks.json"
            let environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BROKER_") }
            return try start(
                ["gateway", "--jwks", jwks, "--issuer", "http://127.0.0.1", "--cluster", "c1", "--port", "0"] + flags,
                environment: environment, directory: nil)
        }

        static func start(_ arguments: [String], environment: [String: String], directory: URL?) throws -> Server {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", #"ulimit -n \#(ConnectionLimitsProcessTests.descriptorLimit) && exec "$0" "$@""#, try BrokerBinary.executable.path] + arguments
            process.environment = environment
            if let directory { process.currentDirectoryURL = directory }
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            var seen = ""
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                seen += String(decoding: chunk, as: UTF8.self)
                let metricsExpected = environment["BROKER_CONFIG"].flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }?
                    .contains("metrics_port:") ?? false
                let metrics = seen.range(of: #"metrics served on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression)
                if let range = seen.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression),
                    metrics != nil || !metricsExpected
                {
                    return Server(
                        process: process, port: Int(seen[range].split(separator: ":").last!)!,
                        metricsPort: metrics.map { Int(seen[$0].split(separator: ":").last!)! })
                }
            }
            process.terminate()
            process.waitUntilExit()
            throw BrokerBinary.ServeFailed(output: seen)
        }

        func stop() {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            cleanUp()
        }
    }
}

/// A TCP connection to a loopback port from a chosen loopback address, every wait bounded.
final class LoopbackConnection {
    let descriptor: Int32

    struct Failed: Error, CustomStringConvertible { var description: String }

    init(port: Int, from source: String = "127.0.0.1") throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failed(description: "socket(): \(errno)") }
        // Bounds connect() too, on Linux: a server that no longer accepts cannot hang the test.
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = UInt16(port).bigEndian
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, connected == 0 else {
            // deinit closes the socket.
            throw Failed(description: "connecting from \(source) to port \(port): errno \(errno)")
        }
    }

    deinit { close(descriptor) }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        #if canImport(Glibc)
        let sent = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        #else
        let sent = bytes.withUnsafeBytes { Darwin.send(descriptor, $0.baseAddress, $0.count, 0) }
        #endif
        guard sent == bytes.count else { throw Failed(description: "send: \(sent), errno \(errno)") }
    }

    /// Reads what arrives within `seconds`: nil on timeout, empty at the end of the stream (or a reset).
    private func receive(within seconds: Double) -> [UInt8]? {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(max(0, seconds) * 1000)) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        return count > 0 ? Array(buffer.prefix(count)) : []
    }

    /// Whether the server closes the connection within `seconds` (whatever it sends first is skipped).
    func waitForClose(within seconds: Double) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            let left = deadline - ContinuousClock.now
            guard let bytes = receive(within: Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18) else {
                return false
            }
            if bytes.isEmpty { return true }
        }
        return false
    }

    /// Sends `request` and returns the status code of the answer's first line, if it comes within `seconds`.
    func status(of request: String, within seconds: Double) -> Int? {
        guard (try? send(request)) != nil else { return nil }
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var received: [UInt8] = []
        while ContinuousClock.now < deadline {
            let left = deadline - ContinuousClock.now
            guard let bytes = receive(within: Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18),
                !bytes.isEmpty
            else { return nil }
            received += bytes
            // The whole answer (head and a small body) arrives together; wait for the head's end.
            let text = String(decoding: received, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let words = text[..<end.lowerBound].split(separator: " ", maxSplits: 2)
                return words.count >= 2 ? Int(words[1]) : nil
            }
        }
        return nil
    }
}
