import Foundation
import XCTest

/// Runs the real `broker` executable built beside the test bundle, in a temporary directory of
/// its own, with its own data and keys directories and a config file making argon2id cheap.
struct BrokerBinary {
    let workDirectory: URL
    var environment: [String: String]

    static var executable: URL {
        get throws {
            let candidates = [
                URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
                Bundle.main.bundleURL,
                Bundle.main.bundleURL.deletingLastPathComponent(),
            ]
            for directory in candidates {
                let url = directory.appendingPathComponent("broker")
                if FileManager.default.isExecutableFile(atPath: url.path) { return url }
            }
            throw XCTSkip("the broker executable is not built beside the tests (run `swift build --build-tests`)")
        }
    }

    /// A broker whose store holds alice (password "correct horse battery staple"), a member of
    /// org1: what the tests of tokens against independent verifiers start from.
    static func makeWithAliceInOrg1(extraConfig: String = "") throws -> BrokerBinary {
        let broker = try make(extraConfig: extraConfig)
        let steps = [
            try broker.run(["users", "add", "alice", "--password-stdin"], stdin: "correct horse battery staple\n"),
            try broker.run(["orgs", "add", "org1"]),
            try broker.run(["members", "add", "org1", "alice"]),
        ]
        for step in steps { XCTAssertEqual(step.status, 0, step.stderr) }
        return broker
    }

    static func make(extraConfig: String = "") throws -> BrokerBinary {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = """
            data_dir: "\(directory.path)/data"
            keys_dir: "\(directory.path)/keys"
            argon2_memory_kib: 64
            argon2_iterations: 1
            login_failure_floor_ms: 0
            \(extraConfig)
            """
        try config.write(to: directory.appendingPathComponent("broker.yaml"), atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BROKER_") }
        environment["BROKER_CONFIG"] = directory.appendingPathComponent("broker.yaml").path
        return BrokerBinary(workDirectory: directory, environment: environment)
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs one command to completion.
    @discardableResult
    func run(_ arguments: [String], stdin: String? = nil) throws -> Result {
        let process = Process()
        process.executableURL = try Self.executable
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = workDirectory
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let stdoutData = out.fileHandleForReading.readDataToEndOfFile()
        let stderrData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: stdoutData, as: UTF8.self),
            stderr: String(decoding: stderrData, as: UTF8.self))
    }

    /// Starts `broker serve` on a free port and returns it once it listens. Its standard error
    /// goes to `standardError` (a file, never a pipe nobody drains), or nowhere.
    func serve(_ extra: [String] = [], standardError: FileHandle? = nil) throws -> (Process, Int) {
        try Self.startListening(
            ["serve", "--port", "0"] + extra, environment: environment, directory: workDirectory, standardError: standardError)
    }

    /// Runs a `broker` command that serves (`serve`, `gateway`) and returns it with the port it
    /// prints in its `listening on http://127.0.0.1:PORT` line.
    static func startListening(
        _ arguments: [String], environment: [String: String], directory: URL? = nil, standardError: FileHandle? = nil,
        executable: URL? = nil
    ) throws -> (Process, Int) {
        let process = Process()
        process.executableURL = try executable ?? Self.executable
        process.arguments = arguments
        process.environment = environment
        if let directory { process.currentDirectoryURL = directory }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = standardError ?? FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        var seen = ""
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
            if let range = seen.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                return (process, Int(seen[range].split(separator: ":").last!)!)
            }
        }
        process.terminate()
        throw ServeFailed(output: seen)
    }

    struct ServeFailed: Error { var output: String }

    func cleanUp() {
        try? FileManager.default.removeItem(at: workDirectory)
    }
}
