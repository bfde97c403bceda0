import Foundation
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the real-gateway tests run besides the broker: Debian's haproxy and nginx, a Python
/// backend echoing request headers, `broker gateway`; all on loopback ports of their own, with
/// every file in the broker's temporary directory.
enum RealGateway {
    /// The repository's `config/gateways` directory: the tests run the shipped examples.
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("config/gateways")

    struct Missing: Error, CustomStringConvertible { var description: String }

    /// A system program the test needs. Absent: a skip on a developer machine, a failure in CI.
    static func program(_ path: String, package: String) throws -> String {
        if FileManager.default.isExecutableFile(atPath: path) { return path }
        let message = "\(path) is not installed (apt-get install \(package), or scripts/install-deps.sh)"
        if ProcessInfo.processInfo.environment["CI"] != nil {
            XCTFail(message)
            throw Missing(description: message)
        }
        throw XCTSkip(message)
    }

    static var python: String {
        if let python = ProcessInfo.processInfo.environment["BROKER_TEST_PYTHON"],
            FileManager.default.isExecutableFile(atPath: python)
        {
            return python
        }
        return "/usr/bin/python3"
    }

    /// A loopback port nobody listens on right now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Missing(description: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else { throw Missing(description: "bind() on 127.0.0.1 failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether something accepts TCP connections on the loopback port.
    static func isListening(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// Waits (bounded) until `port` accepts connections, failing with the process's log.
    static func waitUntilListening(_ port: Int, _ process: GatewayProcess, timeout: TimeInterval = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if isListening(port) { return }
            if !process.process.isRunning {
                throw Missing(description: "\(process.name) exited (\(process.process.terminationStatus)): \(process.output)")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw Missing(description: "\(process.name) does not listen on \(port) after \(timeout) s: \(process.output)")
    }

    // MARK: HTTP

    struct Reply: Sendable {
        var status: Int
        var headers: [String: String]
        var body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        /// The request headers the echo backend saw, lower-cased names.
        var echoed: [String: String] {
            (try? JSONSerialization.jsonObject(with: body) as? [String: String]) ?? [:]
        }
        func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }
    }

    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.timeoutIntervalForRequest = 10
        configuration.httpMaximumConnectionsPerHost = 8
        return URLSession(configuration: configuration)
    }()

    static func request(
        _ url: String, method: String = "GET", headers: [String: String] = [:], body: Data? = nil
    ) async throws -> Reply {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = body
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields { fields["\(name)"] = "\(value)" }
        return Reply(status: http.statusCode, headers: fields, body: data)
    }

    /// GET through a gateway, with `token` as the bearer token when given.
    static func get(_ url: String, token: String?, headers: [String: String] = [:]) async throws -> Reply {
        var headers = headers
        if let token { headers["Authorization"] = "Bearer \(token)" }
        return try await request(url, headers: headers)
    }

    // MARK: tokens

    static let password = "correct horse battery staple"

    /// A fresh access token from generation 1's `POST /api/org_token/`.
    static func accessToken(broker port: Int, user: String = "alice", org: String) async throws -> String {
        let body = try JSONSerialization.data(withJSONObject: ["username": user, "password": password, "org_name": org])
        let reply = try await request(
            "http://127.0.0.1:\(port)/api/org_token/", method: "POST", headers: ["Content-Type": "application/json"],
            body: body)
        guard reply.status == 200,
            let bundle = try JSONSerialization.jsonObject(with: reply.body) as? [String: Any],
            let access = bundle["access"] as? String
        else { throw Missing(description: "POST /api/org_token/ answered \(reply.status): \(reply.text)") }
        return access
    }

    /// A generation-2 token from a GitHub PAT login (`POST /auth/github/pat`) at the broker on `port`.
    static func githubPATToken(broker port: Int, pat: String) async throws -> String {
        let login = try JSONSerialization.data(withJSONObject: ["pat": pat])
        let reply = try await request(
            "http://127.0.0.1:\(port)/auth/github/pat", method: "POST", headers: ["Content-Type": "application/json"],
            body: login)
        let answer = try JSONSerialization.jsonObject(with: reply.body) as? [String: Any]
        return try XCTUnwrap(answer?["token"] as? String, "\(reply.status): \(reply.text)")
    }

    /// Runs each of `commands` with the broker's CLI, asserting it succeeds.
    static func run(_ commands: [[String]], on broker: BrokerBinary, file: StaticString = #filePath, line: UInt = #line) throws {
        for command in commands {
            let result = try broker.run(command)
            XCTAssertEqual(result.status, 0, "\(command): \(result.stderr)", file: file, line: line)
        }
    }

    static func base64URLDecode(_ text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }

    static func base64URLEncode(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// A token's header (part 0) or payload (part 1), unverified.
    static func part(_ token: String, _ index: Int) -> [String: Any] {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = base64URLDecode(parts[index]),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return object
    }

    static func kid(_ token: String) -> String { part(token, 0)["kid"] as? String ?? "" }

    /// Sets up a broker for gateway tests: `alice` member of org1 (cluster1) and org2 (cluster2),
    /// `bob` owner of org1.
    static func broker(_ extraConfig: String) throws -> BrokerBinary {
        let broker = try BrokerBinary.make(extraConfig: "issuer: \"\(issuer)\"\n" + extraConfig)
        for user in ["alice", "bob"] {
            let added = try broker.run(["users", "add", user, "--password-stdin"], stdin: password + "\n")
            XCTAssertEqual(added.status, 0, added.stderr)
        }
        // Cluster names unlike the org names: gateways must check aud, not org_name.
        for (org, cluster) in [("org1", "cluster1"), ("org2", "cluster2")] {
            XCTAssertEqual(try broker.run(["orgs", "add", org, "--cluster", cluster]).status, 0)
        }
        XCTAssertEqual(try broker.run(["members", "add", "org1", "alice"]).status, 0)
        XCTAssertEqual(try broker.run(["members", "add", "org2", "alice"]).status, 0)
        XCTAssertEqual(try broker.run(["members", "add", "org1", "bob", "--role", "owner"]).status, 0)
        return broker
    }

    /// Not the default, so a gateway that ignores `iss` or defaults it would be caught.
    static let issuer = "https://login.gateway-test.example"

    /// A directory for one gateway's files inside the broker's temporary directory.
    static func directory(_ broker: BrokerBinary, _ name: String) throws -> URL {
        let directory = broker.workDirectory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    // MARK: processes

    /// Backend: answers every GET with the request headers it received, as a JSON object.
    static let echoScript = """
        import http.server, json, sys
        class Echo(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        http.server.ThreadingHTTPServer.daemon_threads = True
        http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
        """

    static func startEcho(in directory: URL) throws -> (GatewayProcess, Int) {
        let port = try freePort()
        let echo = try GatewayProcess(
            name: "echo backend", executable: python, arguments: ["-c", echoScript, "\(port)"], directory: directory)
        try waitUntilListening(port, echo)
        return (echo, port)
    }

    /// `broker gateway` for `cluster`, fed by the broker's JWKS.
    static func startForwardAuth(
        _ broker: BrokerBinary, brokerPort: Int, cluster: String, in directory: URL, extra: [String] = []
    ) throws -> (GatewayProcess, Int) {
        let port = try freePort()
        let gateway = try GatewayProcess(
            name: "broker gateway", executable: try BrokerBinary.executable.path,
            arguments: [
                "gateway", "--jwks", "http://127.0.0.1:\(brokerPort)/.well-known/jwks.json", "--issuer", issuer,
                "--cluster", cluster, "--port", "\(port)",
            ] + extra,
            environment: broker.environment, directory: directory)
        try waitUntilListening(port, gateway)
        return (gateway, port)
    }

    /// nginx running `config/gateways/nginx.conf`, its addresses replaced with the test's and
    /// every path nginx writes (pid, logs, temp) in `directory`.
    static func startNginx(gatewayPort: Int, backendPort: Int, in directory: URL) throws -> (GatewayProcess, Int) {
        let nginx = try program("/usr/sbin/nginx", package: "nginx-light")
        var config = try String(contentsOf: examples.appendingPathComponent("nginx.conf"), encoding: .utf8)
        let port = try freePort()
        let paths = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .map { "    \($0)_temp_path \(directory.path)/\($0)_temp;" }.joined(separator: "\n")
        for (old, new) in [
            ("server 127.0.0.1:9000;", "server 127.0.0.1:\(gatewayPort);"),
            ("server 127.0.0.1:9081;", "server 127.0.0.1:\(backendPort);"),
            ("listen 80;", "listen 127.0.0.1:\(port);"),
            ("worker_processes auto;", "worker_processes 1;"),
            ("http {\n", "http {\n\(paths)\n    access_log \(directory.path)/access.log;\n"),
        ] {
            guard config.contains(old) else { throw Missing(description: "nginx.conf no longer contains `\(old)`") }
            config = config.replacingOccurrences(of: old, with: new)
        }
        let file = directory.appendingPathComponent("nginx.conf")
        try config.write(to: file, atomically: true, encoding: .utf8)
        let process = try GatewayProcess(
            name: "nginx", executable: nginx,
            arguments: [
                "-p", directory.path, "-c", file.path, "-e", directory.appendingPathComponent("error.log").path,
                "-g", "daemon off; pid \(directory.path)/nginx.pid;",
            ],
            directory: directory)
        try waitUntilListening(port, process)
        return (process, port)
    }
}

extension RealGateway {
    /// The shipped key-slot script, `config/gateways/refresh-broker-keys`, executed as it is
    /// (exit 0 changed, 2 unchanged, 1 error). `haproxyConfig` is the file whose slots it counts
    /// (`GATEWAY_HAPROXY_CFG`): the shipped haproxy.cfg unless a test gives another.
    static func refreshHAProxyKeys(
        brokerPort: Int, keysDirectory: URL, alg: String, haproxyConfig: URL? = nil, environment: [String: String] = [:],
        options: [String] = []
    ) throws -> (Int32, String) {
        var variables = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("GATEWAY_") }
        variables["GATEWAY_HAPROXY_CFG"] = (haproxyConfig ?? examples.appendingPathComponent("haproxy.cfg")).path
        variables.merge(environment) { $1 }
        return try runToEnd(
            refreshScript, options + ["http://127.0.0.1:\(brokerPort)", keysDirectory.path, alg], environment: variables)
    }

    /// Runs `executable` to its end: its exit status and its output, standard error included.
    static func runToEnd(
        _ executable: URL, _ arguments: [String], environment: [String: String], directory: URL? = nil
    ) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        if let directory { process.currentDirectoryURL = directory }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    /// `config/gateways/refresh-broker-keys`, the file operators install.
    static var refreshScript: URL { examples.appendingPathComponent("refresh-broker-keys") }

    /// HAProxy (master-worker, in the foreground) running `config/gateways/haproxy.cfg`, set up
    /// through the environment variables the file documents.
    static func startHAProxy(
        keysDirectory: URL, alg: String, cluster: String, backendPort: Int, in directory: URL
    ) throws -> (GatewayProcess, Int) {
        let haproxy = try program("/usr/sbin/haproxy", package: "haproxy")
        let port = try freePort()
        var environment = ProcessInfo.processInfo.environment
        environment["GATEWAY_ISSUER"] = issuer
        environment["GATEWAY_CLUSTER_NAME"] = cluster
        environment["GATEWAY_ALG"] = alg
        environment["GATEWAY_KEYS_DIR"] = keysDirectory.path
        environment["GATEWAY_BIND"] = "127.0.0.1:\(port)"
        environment["GATEWAY_NODE"] = "127.0.0.1:\(backendPort)"
        let process = try GatewayProcess(
            name: "haproxy", executable: haproxy,
            arguments: [
                "-f", examples.appendingPathComponent("haproxy.cfg").path, "-p", directory.appendingPathComponent("haproxy.pid").path,
            ],
            environment: environment, directory: directory)
        try waitUntilListening(port, process)
        return (process, port)
    }
}

/// HAProxy's side of a test: a working directory beside the test broker, key slots filled by the
/// shipped refresh script from the broker on `brokerPort`, and an echo backend (`stop()` ends
/// it); ``startHAProxy(cluster:)`` puts an HAProxy in front of it.
struct HAProxyStage {
    let directory: URL
    let keys: URL
    let alg: String
    let echo: GatewayProcess
    let backendPort: Int

    static func prepare(
        _ broker: BrokerBinary, brokerPort: Int, alg: String = "RS256", file: StaticString = #filePath, line: UInt = #line
    ) throws -> HAProxyStage {
        let directory = try RealGateway.directory(broker, "haproxy")
        let keys = directory.appendingPathComponent("keys")
        let (refreshed, output) = try RealGateway.refreshHAProxyKeys(brokerPort: brokerPort, keysDirectory: keys, alg: alg)
        XCTAssertEqual(refreshed, 0, output, file: file, line: line)
        let (echo, backendPort) = try RealGateway.startEcho(in: directory)
        return HAProxyStage(directory: directory, keys: keys, alg: alg, echo: echo, backendPort: backendPort)
    }

    /// HAProxy for `cluster`, forwarding to the echo backend: the process and its port.
    func startHAProxy(cluster: String = "cluster1") throws -> (GatewayProcess, Int) {
        try RealGateway.startHAProxy(keysDirectory: keys, alg: alg, cluster: cluster, backendPort: backendPort, in: directory)
    }

    func stop() { echo.stop() }
}

/// A process a real-gateway test started; its output goes to a file (never a pipe nobody
/// reads), `stop()` ends it.
final class GatewayProcess: @unchecked Sendable {
    let name: String
    let process = Process()
    let log: URL

    init(
        name: String, executable: String, arguments: [String], environment: [String: String]? = nil, directory: URL
    ) throws {
        self.name = name
        log = directory.appendingPathComponent("\(name.replacingOccurrences(of: " ", with: "-"))-\(UUID().uuidString.prefix(8)).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.currentDirectoryURL = directory
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try handle.close()
    }

    /// The last part of its output, for failure messages.
    var output: String {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return String(text.suffix(3000))
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// SIGTERM, then SIGKILL if it has not exited within 5 s.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { signal(SIGKILL) }
        process.waitUntilExit()
    }
}
