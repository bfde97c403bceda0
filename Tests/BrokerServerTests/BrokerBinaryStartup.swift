import Foundation
import XCTest

extension BrokerBinary {
    /// How a command that should stop at start-up ended: its output, or `stillRunning` when it
    /// did not stop (a `serve` that started after all; it has been terminated).
    struct StartupResult {
        var status: Int32
        var stdout: String
        var stderr: String
        var stillRunning: Bool
    }

    /// Runs a command that is expected to exit on its own (a `serve` refused at start-up),
    /// terminating it if it is still running after `timeout` seconds. Output goes to files, so
    /// a server that keeps running cannot block on a full pipe.
    func runExpectingExit(
        _ arguments: [String], environment: [String: String]? = nil, timeout: TimeInterval = 60
    ) throws -> StartupResult {
        let outputs = workDirectory.appendingPathComponent("startup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: outputs, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: outputs) }
        let stdoutURL = outputs.appendingPathComponent("stdout")
        let stderrURL = outputs.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        let process = Process()
        process.executableURL = try Self.executable
        process.arguments = arguments
        process.environment = environment ?? self.environment
        process.currentDirectoryURL = workDirectory
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        let stillRunning = exited.wait(timeout: .now() + timeout) == .timedOut
        if stillRunning {
            process.terminate()
            exited.wait()
        }
        return StartupResult(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "",
            stillRunning: stillRunning)
    }
}

extension BrokerBinary {
    /// Starts `broker serve` on a free port and returns it with everything it printed up to and
    /// including its banner (written at once, so it arrives whole).
    func serveCapturingBanner(environment: [String: String]? = nil) throws -> (process: Process, port: Int, banner: String) {
        let process = Process()
        process.executableURL = try Self.executable
        process.arguments = ["serve", "--port", "0"]
        process.environment = environment ?? self.environment
        process.currentDirectoryURL = workDirectory
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        var seen = ""
        while true {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
            if let range = seen.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                return (process, Int(seen[range].split(separator: ":").last!)!, seen)
            }
        }
        process.terminate()
        throw ServeFailed(output: seen)
    }
}
