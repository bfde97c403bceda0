import Foundation

/// The reference of the durable-write benchmarks: how many `write` + `fdatasync` of one short
/// line a second the disk allows, on a file of the directory measured, one line per sync.
enum SyncedWrites {
    /// The one option of the durable-write benchmarks, `--seconds N`; nil when not given.
    static func seconds(parsing arguments: [String]) throws -> Double? {
        var seconds: Double?
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            guard argument == "--seconds" else { throw BenchError("unknown option \(argument)") }
            guard let text = iterator.next(), let value = Double(text), value > 0 else { throw BenchError("--seconds N") }
            seconds = value
        }
        return seconds
    }

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
