import Foundation

/// The reference of the durable-write benchmarks: how many `write` + `fdatasync` of one short
/// line a second the disk allows, on a file of the directory measured, one line per sync.
enum SyncedWrites {
    static func rate(path: String, seconds: Double) throws -> Double {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw BenchError("cannot open \(path)") }
        defer { close(descriptor) }
        let line = Array(#"{"time":"2026-11-29T12:00:00.000Z","action":"login.password","outcome":"success"}"#.utf8) + [10]
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int(seconds * 1000))
        var count = 0
        while ContinuousClock.now < deadline {
            _ = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            fdatasync(descriptor)
            count += 1
        }
        return Double(count) / Throughput.elapsedSeconds(since: start)
    }
}
