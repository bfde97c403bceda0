import Foundation
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// docs/gateways.md, the HAProxy runbook, run as written: every `sh` block and the cron line,
/// against Debian's HAProxy running the shipped haproxy.cfg and a test broker, all on loopback.
/// `/etc/` and `/usr/local/sbin/` move into a temporary root; `systemctl reload haproxy` is a
/// stub sending SIGUSR2 to the test's HAProxy master; `broker` runs the built binary with the
/// test broker's configuration.
final class RealGatewayRunbookTests: XCTestCase {
    static let repository = RealGateway.examples.deletingLastPathComponent().deletingLastPathComponent()
    static let runbook = repository.appendingPathComponent("docs/gateways.md")
    /// The issuer the runbook's environment block names.
    static let issuer = "https://login.example.org"
    /// Long enough that the emergency steps, run at once, most often meet a broker that has not
    /// yet reloaded its ring and still publishes the withdrawn key.
    static let reloadInterval = 5

    struct Block {
        var name: String
        var language: String
        var text: String
    }

    /// The blocks marked `<!-- run: NAME -->`; fails if a `sh` or `cron` block is not marked.
    static func blocks() throws -> [String: Block] {
        let text = try String(contentsOf: runbook, encoding: .utf8)
        let regex = try NSRegularExpression(pattern: "<!-- run: ([a-z0-9-]+) -->\\n```([a-z]+)\\n(.*?)```", options: [.dotMatchesLineSeparators])
        var blocks: [String: Block] = [:]
        for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            let part = { (index: Int) in String(text[Range(match.range(at: index), in: text)!]) }
            blocks[part(1)] = Block(name: part(1), language: part(2), text: part(3))
        }
        let fenced = text.components(separatedBy: "\n```sh\n").count - 1 + text.components(separatedBy: "\n```cron\n").count - 1
        XCTAssertEqual(fenced, blocks.count, "every sh and cron block of docs/gateways.md is marked to run")
        return blocks
    }

    /// The shipped haproxy.cfg has the slots `broker keys slots` asks for with the default settings.
    func testTheShippedSlotsAreWhatTheDefaultSettingsNeed() throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        let slots = try broker.run(["keys", "slots"])
        XCTAssertEqual(slots.status, 0, slots.stderr)
        let printed = Int(slots.stdout.prefix { $0.isNumber })
        let config = try String(contentsOf: RealGateway.examples.appendingPathComponent("haproxy.cfg"), encoding: .utf8)
        let numbers = Set(RealGatewayEnvironmentTests.captures(#"jwt_verify\([^)]*/key([0-9]+)\.pem""#, in: config).compactMap { Int($0) })
        XCTAssertEqual(printed, 75, slots.stdout)
        XCTAssertEqual(numbers, Set(1...75), "haproxy.cfg reads key1 ... key75")
    }

    /// Install, fill, three rotations within the retention (the cron line after each), a config
    /// whose slots are too few, and an emergency retire; valid tokens always pass, and the
    /// withdrawn key's token is refused once the emergency steps have reloaded HAProxy.
    func testTheRunbookFollowsRotationsAndAnEmergencyRetire() async throws {
        _ = try RealGateway.program("/usr/sbin/haproxy", package: "haproxy")
        let blocks = try Self.blocks()
        var ran: Set<String> = []
        let broker = try BrokerBinary.make(
            extraConfig: "issuer: \"\(Self.issuer)\"\njwks_max_age: 1\nkey_prepublication: 1\nkey_reload_interval: \(Self.reloadInterval)")
        defer { broker.cleanUp() }
        XCTAssertEqual(try broker.run(["users", "add", "alice", "--password-stdin"], stdin: RealGateway.password + "\n").status, 0)
        XCTAssertEqual(try broker.run(["orgs", "add", "org1", "--cluster", "cluster1"]).status, 0)
        XCTAssertEqual(try broker.run(["members", "add", "org1", "alice"]).status, 0)
        let (server, brokerPort) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }

        let root = broker.workDirectory.appendingPathComponent("root")
        let stubs = root.appendingPathComponent("bin")
        for directory in ["bin", "sbin", "etc/default"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        let pidFile = root.appendingPathComponent("haproxy.pid").path
        let reloads = root.appendingPathComponent("reloads").path
        try Self.executable(
            stubs.appendingPathComponent("broker"),
            "#!/bin/sh\nexport BROKER_CONFIG='\(broker.environment["BROKER_CONFIG"]!)'\nexec '\(try BrokerBinary.executable.path)' \"$@\"\n")
        try Self.executable(
            stubs.appendingPathComponent("systemctl"),
            """
            #!/bin/sh
            [ "$1" = reload ] && [ "$2" = haproxy ] || { echo "systemctl stub: $*" >&2; exit 1; }
            echo reload >> '\(reloads)'
            exec kill -USR2 "$(cat '\(pidFile)')"

            """)

        func run(_ name: String, environment: [String: String] = [:]) throws -> (Int32, String) {
            let block = try XCTUnwrap(blocks[name], "docs/gateways.md has no block \(name)")
            ran.insert(name)
            var script = block.text
            var path = "\(stubs.path):\(root.path)/sbin:/usr/sbin:/usr/bin:/bin"
            if block.language == "cron" {
                // m h dom mon dow user command; cron's PATH.
                let line = try XCTUnwrap(script.split(separator: "\n").first { !$0.hasPrefix("#") })
                let fields = line.split(separator: " ", maxSplits: 6, omittingEmptySubsequences: true)
                XCTAssertEqual(fields.count, 7, "a cron.d line: \(line)")
                script = String(fields[6])
                path = "\(stubs.path):/usr/bin:/bin"
            }
            script = script.replacingOccurrences(of: "/usr/local/sbin/", with: "\(root.path)/sbin/")
                .replacingOccurrences(of: "/etc/", with: "\(root.path)/etc/")
            return try RealGateway.runToEnd(
                URL(fileURLWithPath: "/bin/sh"), block.language == "cron" ? ["-c", script] : ["-e", "-c", script],
                environment: ["PATH": path, "HOME": root.path, "LANG": "C.UTF-8"].merging(environment) { $1 },
                directory: Self.repository)
        }

        // Install: the shipped files, byte for byte.
        let installed = try run("install")
        XCTAssertEqual(installed.0, 0, installed.1)
        let script = root.appendingPathComponent("sbin/refresh-broker-keys")
        XCTAssertEqual(try Data(contentsOf: script), try Data(contentsOf: RealGateway.refreshScript))
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: script.path))
        let environmentFile = root.appendingPathComponent("etc/default/haproxy")
        let written = try run("environment")
        XCTAssertEqual(written.0, 0, written.1)
        // The test's own addresses and broker URL (the site's values in the runbook are examples).
        let port = try RealGateway.freePort()
        let directory = try RealGateway.directory(broker, "haproxy")
        let (echo, backendPort) = try RealGateway.startEcho(in: directory)
        defer { echo.stop() }
        let handle = try FileHandle(forWritingTo: environmentFile)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("""
            GATEWAY_BIND="127.0.0.1:\(port)"
            GATEWAY_NODE="127.0.0.1:\(backendPort)"
            GATEWAY_BROKER_URL="http://127.0.0.1:\(brokerPort)"
            GATEWAY_HAPROXY_CFG="\(root.path)/etc/haproxy/haproxy.cfg"

            """.utf8))
        try handle.close()

        // The slots this broker's settings need: 1 s pre-publication, 12 h generation-2 tokens, a
        // retired key published for the reload interval twice (in its retention and its unpublishing).
        let slots = try run("slots")
        XCTAssertEqual(slots.0, 0, slots.1)
        XCTAssertTrue(slots.1.hasPrefix("\(2 + 43_200 + 30 + 2 * Self.reloadInterval) key slots"), slots.1)

        let filled = try run("first-fill")
        XCTAssertEqual(filled.0, 0, filled.1)
        XCTAssertTrue(filled.1.contains("Configuration file is valid"), filled.1)

        let haproxy = try GatewayProcess(
            name: "haproxy", executable: "/usr/sbin/haproxy",
            arguments: ["-f", "\(root.path)/etc/haproxy/haproxy.cfg", "-p", pidFile],
            environment: try Self.environment(of: environmentFile), directory: directory)
        defer { haproxy.stop() }
        try RealGateway.waitUntilListening(port, haproxy)
        let url = "http://127.0.0.1:\(port)/"

        var tokens = [try await RealGateway.accessToken(broker: brokerPort, org: "org1")]
        try await expect(url, tokens[0], 200, haproxy.output)

        // Three rotations well within the retention (12 h): each promotes the key the slots
        // already hold; the cron line then loads the new next key.
        for rotation in 1...3 {
            try await Self.retrying { try run("rotate") }
            let token = try await Self.firstToken(brokerPort: brokerPort, notSignedBy: RealGateway.kid(tokens.last!))
            // Loaded by the previous cron run's reload.
            try await expect(url, token, 200, "rotation \(rotation), before any refresh\n\(haproxy.output)")
            tokens.append(token)
            let cron = try run("cron")
            XCTAssertEqual(cron.0, 0, "rotation \(rotation): \(cron.1)")
            try await Self.waitForReloads(rotation, haproxy)
            for (index, each) in tokens.enumerated() {
                try await expect(url, each, 200, "rotation \(rotation), token \(index)\n\(haproxy.output)")
            }
        }
        let jwks = try await RealGateway.request("http://127.0.0.1:\(brokerPort)/.well-known/jwks.json")
        let published = ((try JSONSerialization.jsonObject(with: jwks.body) as? [String: Any])?["keys"] as? [[String: Any]]) ?? []
        XCTAssertEqual(published.count, 5, "3 retired + active + next: more than the 4 slots of the old recipe")

        // Too few slots: the script changes nothing and says what to do.
        let keysDirectory = root.appendingPathComponent("etc/haproxy/broker-keys")
        let fourSlots = root.appendingPathComponent("etc/haproxy/four-slots.cfg")
        let lines = try String(contentsOf: root.appendingPathComponent("etc/haproxy/haproxy.cfg"), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .filter { line in
                guard let slot = RealGatewayEnvironmentTests.captures(#"/key([0-9]+)\.pem""#, in: String(line)).first else { return true }
                return Int(slot)! <= 4
            }
        try lines.joined(separator: "\n").write(to: fourSlots, atomically: true, encoding: .utf8)
        let before = try RealGatewayEnvironmentTests.snapshot(keysDirectory)
        let overflow = try RealGateway.refreshHAProxyKeys(
            brokerPort: brokerPort, keysDirectory: keysDirectory, alg: "RS256", haproxyConfig: fourSlots)
        XCTAssertEqual(overflow.0, 1, overflow.1)
        for expected in ["publishes 5 RS256 keys", "has 4 key slots", "nothing was changed", "at least 5 slots", "broker keys slots"] {
            XCTAssertTrue(overflow.1.contains(expected), "says \(expected): \(overflow.1)")
        }
        XCTAssertEqual(try RealGatewayEnvironmentTests.snapshot(keysDirectory), before, "the slots are left as they were")

        // Emergency: the active key is compromised.
        let compromised = tokens.last!
        let withdrawn = try run("emergency-broker", environment: ["COMPROMISED_KID": RealGateway.kid(compromised)])
        XCTAssertEqual(withdrawn.0, 0, withdrawn.1)
        try await expect(url, compromised, 200, "HAProxy keeps a withdrawn key until it is reloaded")
        // At once, as the runbook says: the broker has most likely not reloaded its ring yet
        // and still publishes the key; --withdrawn keeps it out of the slots.
        let stale = try await RealGateway.request("http://127.0.0.1:\(brokerPort)/.well-known/jwks.json")
        print("emergency: the broker still publishes the withdrawn key: \(String(decoding: stale.body, as: UTF8.self).contains(RealGateway.kid(compromised)))")
        let reloaded = try run("emergency-haproxy", environment: ["COMPROMISED_KID": RealGateway.kid(compromised)])
        XCTAssertEqual(reloaded.0, 0, reloaded.1)
        try await Self.waitForReloads(4, haproxy)
        let fresh = try await Self.firstToken(brokerPort: brokerPort, notSignedBy: RealGateway.kid(compromised))
        try await expect(url, fresh, 200, "the next key, already in the slots\n\(haproxy.output)")
        try await expect(url, compromised, 401, "the withdrawn key's token after the refresh and reload\n\(haproxy.output)")
        for (index, each) in (tokens.dropLast() + [fresh]).enumerated() {
            try await expect(url, each, 200, "token \(index) after the emergency\n\(haproxy.output)")
        }
        XCTAssertEqual(try String(contentsOfFile: reloads, encoding: .utf8).split(separator: "\n").count, 4)
        XCTAssertTrue(haproxy.process.isRunning, haproxy.output)
        XCTAssertEqual(ran, Set(blocks.keys), "every command of docs/gateways.md was run")
    }

    /// `refresh-broker-keys --withdrawn KID` leaves a key out of the slots while the broker still
    /// publishes it (a replica that has not yet reloaded its ring after `retire --now`), in both
    /// spellings and for a kid that begins with "-"; without the flag the same key is loaded.
    func testAWithdrawnKeyStaysOutOfTheSlotsWhileTheBrokerStillPublishesIt() async throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        let (server, port) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }
        let jwks = try await RealGateway.request("http://127.0.0.1:\(port)/.well-known/jwks.json")
        let published = (((try JSONSerialization.jsonObject(with: jwks.body) as? [String: Any])?["keys"] as? [[String: Any]]) ?? [])
            .compactMap { $0["kid"] as? String }
        XCTAssertEqual(published.count, 2, "active and next")
        let keys = broker.workDirectory.appendingPathComponent("slots")
        func slotted() throws -> Set<String> {
            let names = try FileManager.default.contentsOfDirectory(atPath: keys.path).filter { $0.hasSuffix(".kid") }
            return Set(try names.map { try String(contentsOf: keys.appendingPathComponent($0), encoding: .utf8) }
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty })
        }
        for options in [["--withdrawn", published[1]], ["--withdrawn=\(published[1])"], ["--withdrawn", "-not-published", "--withdrawn", published[1]]] {
            try? FileManager.default.removeItem(at: keys)
            let refreshed = try RealGateway.refreshHAProxyKeys(brokerPort: port, keysDirectory: keys, alg: "RS256", options: options)
            XCTAssertEqual(refreshed.0, 0, refreshed.1)
            XCTAssertEqual(try slotted(), [published[0]], "\(options)")
        }
        let refreshed = try RealGateway.refreshHAProxyKeys(brokerPort: port, keysDirectory: keys, alg: "RS256")
        XCTAssertEqual(refreshed.0, 0, refreshed.1)
        XCTAssertEqual(try slotted(), Set(published))
        let missing = try RealGateway.refreshHAProxyKeys(brokerPort: port, keysDirectory: keys, alg: "RS256", options: ["--withdrawn="])
        XCTAssertEqual(missing.0, 1, missing.1)
        XCTAssertTrue(missing.1.contains("--withdrawn needs a kid"), missing.1)
    }

    // MARK: helpers

    static func executable(_ file: URL, _ text: String) throws {
        try text.write(to: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: file.path)
    }

    /// The variables of an environment file, as `set -a; . FILE` makes them.
    static func environment(of file: URL) throws -> [String: String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "set -a; . \"$0\"; set +a; env -0", file.path]
        process.environment = ["PATH": "/usr/bin:/bin"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var variables: [String: String] = [:]
        for entry in data.split(separator: 0) {
            let text = String(decoding: entry, as: UTF8.self)
            guard let equals = text.firstIndex(of: "=") else { continue }
            variables[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        return variables
    }

    /// A rotation without --force is refused until the next key is key_prepublication (1 s) old.
    static func retrying(_ body: () throws -> (Int32, String)) async throws {
        let deadline = Date().addingTimeInterval(15)
        var last = (Int32(-1), "")
        while Date() < deadline {
            last = try body()
            if last.0 == 0 { return }
            try await Task.sleep(for: .milliseconds(300))
        }
        XCTFail("still refused after 15 s: \(last.1)")
    }

    /// The first token signed by another key than `kid` (the server reloads the ring within `reloadInterval`).
    static func firstToken(brokerPort: Int, notSignedBy kid: String) async throws -> String {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            let token = try await RealGateway.accessToken(broker: brokerPort, org: "org1")
            if RealGateway.kid(token) != kid { return token }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw RealGateway.Missing(description: "the broker still signs with \(kid) after 15 s")
    }

    func expect(
        _ url: String, _ token: String, _ status: Int, _ message: @autoclosure () -> String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        // A connection of its own: one kept alive from before a reload would be served by the old
        // worker, which finishes the connections it has with the keys it loaded (a flake once).
        let reply = try await RealGateway.get(url, token: token, headers: ["Connection": "close"])
        XCTAssertEqual(reply.status, status, "\(message()) \(reply.text)", file: file, line: line)
    }

    /// Until `count` reloads have taken effect: a reload's new worker is up once the master has
    /// told the old one to stop (its proxies stop; it only finishes the connections it has).
    static func waitForReloads(_ count: Int, _ haproxy: GatewayProcess) async throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let log = (try? String(contentsOf: haproxy.log, encoding: .utf8)) ?? ""
            let stopped = log.split(separator: "\n").filter { $0.hasPrefix("[WARNING]") && $0.contains("Proxy cluster stopped") }
            if stopped.count >= count { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RealGateway.Missing(description: "HAProxy has not completed \(count) reloads after 20 s: \(haproxy.output)")
    }
}
