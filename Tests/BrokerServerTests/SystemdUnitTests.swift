import Foundation
import XCTest
import Yams

/// `deploy/systemd/broker.service` and its PostgreSQL drop-in: accepted by systemd without a
/// warning, hardened as docs/deployment.md says, stopping no sooner than `shutdown_grace` allows,
/// and the binary runs under the restrictions this machine can impose without systemd.
final class SystemdUnitTests: XCTestCase {
    /// The unit's `[Service]` assignments in order (a key may repeat, e.g. `SystemCallFilter`).
    private func serviceAssignments(_ text: String) -> [(key: String, value: String)] {
        var section = ""
        var assignments: [(key: String, value: String)] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") { section = line; continue }
            guard section == "[Service]", let equals = line.firstIndex(of: "=") else { continue }
            assignments.append((String(line[..<equals]), String(line[line.index(after: equals)...])))
        }
        return assignments
    }

    private func value(_ key: String, in text: String) -> String? {
        serviceAssignments(text).last { $0.key == key }?.value
    }

    /// A copy of the unit and its drop-ins in a directory of their own, `ExecStart` pointing at
    /// the broker built beside the tests (verify refuses a command that does not exist).
    private func unitDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("broker.service.d"), withIntermediateDirectories: true)
        let unit = try DeployRecipes.text("systemd/broker.service")
        let installed = "ExecStart=/usr/local/bin/broker "
        XCTAssertTrue(unit.contains("\n" + installed), "ExecStart names the installed binary")
        try unit.replacingOccurrences(of: installed, with: "ExecStart=\(try BrokerBinary.executable.path) ")
            .write(to: directory.appendingPathComponent("broker.service"), atomically: true, encoding: .utf8)
        for dropIn in try FileManager.default.contentsOfDirectory(atPath: DeployRecipes.url("systemd/broker.service.d").path) {
            try FileManager.default.copyItem(
                at: DeployRecipes.url("systemd/broker.service.d/\(dropIn)"),
                to: directory.appendingPathComponent("broker.service.d/\(dropIn)"))
        }
        return directory
    }

    private func systemdAnalyze() throws -> String {
        guard let tool = DeployRecipes.tool("systemd-analyze") else {
            throw XCTSkip("systemd-analyze is not installed (Debian package systemd): the unit is not verified")
        }
        return tool
    }

    func testUnitAndItsDropInsPassSystemdAnalyzeVerifyWithoutAWord() throws {
        let tool = try systemdAnalyze()
        let directory = try unitDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var environment = ProcessInfo.processInfo.environment
        // The unit search path: this directory only (the trailing colon adds the built-in paths,
        // for the targets the unit names), so the drop-ins in broker.service.d are read as well.
        environment["SYSTEMD_UNIT_PATH"] = directory.path + ":"
        let outcome = try DeployRecipes.run(tool, ["verify", "broker.service"], environment: environment, in: directory)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        // verify exits 0 for an unknown key or a malformed value and only prints a line: any
        // output is a mistake in the unit.
        XCTAssertEqual(outcome.output, "", "systemd-analyze verify printed warnings")
    }

    func testUnitIsConfinedAsTheDocumentationSays() throws {
        let unit = try DeployRecipes.text("systemd/broker.service")
        let expected: [String: String] = [
            "User": "broker", "StateDirectory": "broker", "StateDirectoryMode": "0700", "NoNewPrivileges": "yes",
            "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
            "CapabilityBoundingSet": "", "AmbientCapabilities": "", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
            "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "RestrictSUIDSGID": "yes", "Restart": "on-failure",
            "UMask": "0077",
        ]
        for (key, wanted) in expected { XCTAssertEqual(value(key, in: unit), wanted, key) }
        let start = try XCTUnwrap(value("ExecStart", in: unit))
        XCTAssertTrue(start.hasSuffix(" serve --config /etc/broker/broker.yaml"), "an explicit configuration file: \(start)")

        // systemd's own measure of what the service could still do (0 = nothing, 10 = root).
        let tool = try systemdAnalyze()
        let directory = try unitDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let outcome = try DeployRecipes.run(
            tool, ["security", "--offline=yes", "--threshold=20", "--no-pager", "./broker.service"], in: directory)
        XCTAssertEqual(outcome.status, 0, outcome.output)
        let level = try XCTUnwrap(outcome.output.firstMatch(of: /Overall exposure level for broker.service: (\d+\.\d)/), outcome.output)
        XCTAssertLessThanOrEqual(try XCTUnwrap(Double(level.1)), 2.0, outcome.output)
    }

    func testStopTimeoutOutlastsTheShutdownGraceOfTheCodeAndOfTheExampleConfiguration() throws {
        let unit = try DeployRecipes.text("systemd/broker.service")
        let stop = try XCTUnwrap(DeployRecipes.systemdSeconds(try XCTUnwrap(value("TimeoutStopSec", in: unit))))
        XCTAssertGreaterThan(stop, DeployRecipes.defaultShutdownGrace, "TimeoutStopSec must leave the drain its time")
        let example = try XCTUnwrap(Yams.load(yaml: try DeployRecipes.text("systemd/broker.yaml")) as? [String: Any])
        let grace = example["shutdown_grace"] as? Int ?? DeployRecipes.defaultShutdownGrace
        XCTAssertGreaterThan(stop, grace)
        // SIGTERM goes to the broker itself, which drains; SIGKILL only after the timeout.
        XCTAssertEqual(value("KillSignal", in: unit) ?? "SIGTERM", "SIGTERM")
        // Enough descriptors for the connection cap's ceiling (docs/operations.md).
        let descriptors = try XCTUnwrap(Int(try XCTUnwrap(value("LimitNOFILE", in: unit))))
        XCTAssertGreaterThanOrEqual(descriptors - max(64, descriptors / 8), 10_000)
    }

    func testExampleConfigurationIsValidAndKeepsTheStoreInTheStateDirectory() throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        let path = DeployRecipes.url("systemd/broker.yaml").path
        let result = try broker.run(["config", "check", "--config", path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("data_dir                      = /var/lib/broker/data  (file \(path))"), result.stdout)
        XCTAssertTrue(result.stdout.contains("keys_dir                      = /var/lib/broker/keys  (file \(path))"), result.stdout)
    }

    /// Without systemd (it is not PID 1 here) the unit's restrictions cannot all be applied; two
    /// that could break a program silently can: no new privileges, and no memory ever both
    /// writable and executable (`MemoryDenyWriteExecute=`, the kernel's PR_SET_MDWE). The broker
    /// starts (generating RSA keys, opening SQLite), answers /readyz and checks a password
    /// (argon2id) under both.
    func testBrokerServesUnderNoNewPrivilegesAndMemoryDenyWriteExecute() async throws {
        guard let python = ProcessInfo.processInfo.environment["BROKER_TEST_PYTHON"] ?? DeployRecipes.tool("python3") else {
            throw XCTSkip("python3 is not installed: the restrictions cannot be applied before exec")
        }
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        let script = """
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_NO_NEW_PRIVS, PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 38, 65, 1
            if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0: sys.exit("no_new_privs refused")
            if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0: sys.exit("MDWE_UNSUPPORTED")
            os.execv(sys.argv[1], sys.argv[1:])
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script, try BrokerBinary.executable.path, "serve", "--port", "0"]
        process.environment = broker.environment
        process.currentDirectoryURL = broker.workDirectory
        let out = Pipe()
        let errors = broker.workDirectory.appendingPathComponent("stderr.log")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        defer { if process.isRunning { process.terminate(); process.waitUntilExit() } }
        var seen = ""
        var port: Int?
        while port == nil {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
            if let match = seen.firstMatch(of: /listening on http:\/\/127\.0\.0\.1:(\d+)/) { port = Int(match.1) }
        }
        let stderr = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
        if stderr.contains("MDWE_UNSUPPORTED") { throw XCTSkip("this kernel has no PR_SET_MDWE (Linux 6.3 and later)") }
        let listening = try XCTUnwrap(port, "the broker did not start under the restrictions:\n\(seen)\n\(stderr)")

        let ready = String(decoding: try await RawHTTPClient.exchange(
            port: listening, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), as: UTF8.self)
        XCTAssertTrue(ready.hasPrefix("HTTP/1.1 200"), ready)
        let body = #"{"username":"nobody","password":"not the password","org_name":"org1"}"#
        let login = String(decoding: try await RawHTTPClient.exchange(
            port: listening,
            "POST /api/org_token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
                + "Connection: close\r\n\r\n\(body)"), as: UTF8.self)
        XCTAssertTrue(login.hasPrefix("HTTP/1.1 401"), login)
        process.terminate()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, (try? String(contentsOf: errors, encoding: .utf8)) ?? "")
    }
}
