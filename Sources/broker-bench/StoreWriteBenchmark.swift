import BrokerCore
import BrokerSQLite
import Foundation
import Logging

/// `broker-bench store`: durable write transactions per second on the embedded SQLite store
/// (one small insert each, on disk before `transaction` returns) with 1, 8 and 64 in flight,
/// beside the disk's own `write` + `fdatasync` rate in the same directory and run. Group commit
/// (`CommitSync`) lets the commits made during one sync share the next, so the rate grows with
/// concurrency instead of staying at one transaction per sync.
struct StoreWriteBenchmark {
    var seconds: Double = 2
    var concurrencies: [Int] = [1, 8, 64]

    init(parsing arguments: [String]) throws {
        seconds = try SyncedWrites.seconds(parsing: arguments) ?? seconds
    }

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-bench-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let reference = try SyncedWrites.rate(path: directory.appendingPathComponent("reference.log").path, seconds: seconds)
        print("reference write+fdatasync=\(Int(reference))/s (one line per sync, \(directory.deletingLastPathComponent().path))")
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let store = try await SQLiteStore.open(path: directory.appendingPathComponent("broker.sqlite3").path, logger: logger)
        for concurrency in concurrencies {
            let rate = try await Throughput.measure(seconds: seconds, concurrency: concurrency) {
                let jti = UUID().uuidString
                try await store.transaction { tx in
                    try await tx.insertRevokedAccessToken(jti: jti, expiresAt: Date().addingTimeInterval(3600))
                }
            }
            print(
                "sqlite-writes concurrency=\(concurrency) transactions=\(Int(rate))/s "
                    + "transactions/reference=\(String(format: "%.2f", rate / reference))")
        }
        try await store.close()
    }
}
