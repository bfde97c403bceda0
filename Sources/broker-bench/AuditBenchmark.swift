import BrokerCore
import Foundation
import Logging

/// `broker-bench audit`: what a durable audit line costs. Measures `AuditTrail.record` to a
/// file (each line on disk, `fdatasync`, before `record` returns) with 1, 8 and 64 records in
/// flight, beside the reference the disk allows: a loop of one `write` + `fdatasync` on a file
/// in the same directory, in the same run. Group commit should let concurrent records share a
/// sync, so `records/s` grows with concurrency while the reference stays one line per sync.
struct AuditBenchmark {
    var seconds: Double = 2
    var concurrencies: [Int] = [1, 8, 64]

    init(parsing arguments: [String]) throws {
        seconds = try SyncedWrites.seconds(parsing: arguments) ?? seconds
    }

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-bench-audit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let reference = try SyncedWrites.rate(path: directory.appendingPathComponent("reference.log").path, seconds: seconds)
        print("reference write+fdatasync=\(Int(reference))/s (one line per sync, \(directory.deletingLastPathComponent().path))")
        let trail = AuditTrail.file(
            path: directory.appendingPathComponent("audit.log").path, failureMode: .failClosed,
            logger: Logger(label: "bench"))
        for concurrency in concurrencies {
            let rate = try await measure(concurrency) {
                try await trail.record(
                    .loginPassword, .success, actor: "alice", organization: "org1", target: "jti:0123456789abcdef",
                    context: AuditContext(requestID: "bench", clientIP: "127.0.0.1"))
            }
            print(
                "audit concurrency=\(concurrency) records=\(Int(rate))/s records/reference=\(String(format: "%.2f", rate / reference))")
        }
        await trail.close()
    }

    private func measure(_ concurrency: Int, _ operation: @escaping @Sendable () async throws -> Void) async throws -> Double {
        try await Throughput.measure(seconds: seconds, concurrency: concurrency, warmUp: 16, operation)
    }
}
