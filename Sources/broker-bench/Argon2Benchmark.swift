import BrokerCrypto
import Foundation

/// `broker-bench argon2`: the reference of password logins, the raw argon2id rate. One thread per
/// core (or `--threads N`) verifies the right password against one argon2id hash at the given
/// parameters (default the broker's, m=19456 KiB, t=2, p=1) as fast as it can, with nothing
/// else: no HTTP, no store, no signing. A login can at best match it; `scripts/bench-http.sh`
/// prints the ratio.
struct Argon2Benchmark {
    var seconds: Double = 10
    var threads = ProcessInfo.processInfo.activeProcessorCount
    var parameters = Argon2idParameters.owaspMinimum

    init(parsing arguments: [String]) throws {
        var iterator = arguments.makeIterator()
        func number(_ name: String) throws -> UInt32 {
            guard let text = iterator.next(), let value = UInt32(text), value > 0 else { throw BenchError("\(name) N") }
            return value
        }
        while let argument = iterator.next() {
            switch argument {
            case "--seconds":
                guard let text = iterator.next(), let value = Double(text), value > 0 else { throw BenchError("--seconds N") }
                seconds = value
            case "--threads": threads = Int(try number("--threads"))
            case "--memory-kib": parameters.memoryKiB = try number("--memory-kib")
            case "--iterations": parameters.iterations = try number("--iterations")
            case "--parallelism": parameters.parallelism = try number("--parallelism")
            default: throw BenchError("unknown option \(argument)")
            }
        }
    }

    func run() throws {
        let hasher = PasswordHasher(parameters: parameters)
        let password = "correct horse battery staple"
        let stored = try hasher.hash(password)
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        let start = ContinuousClock.now
        let counts = Counts(threads)
        // Blocking threads of their own, as the broker's hashing pool uses: one per core.
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            var count = 0
            while ContinuousClock.now < deadline {
                guard case .valid = hasher.verify(password, against: stored) else { fatalError("the right password failed") }
                count += 1
            }
            counts.set(thread, count)
        }
        let rate = Double(counts.total) / Throughput.elapsedSeconds(since: start)
        print(
            "argon2id verify m=\(parameters.memoryKiB) t=\(parameters.iterations) p=\(parameters.parallelism) "
                + "threads=\(threads) rate=\(String(format: "%.1f", rate))/s")
    }

    /// Each thread's count, written once at its end.
    private final class Counts: @unchecked Sendable {
        private var values: [Int]
        private let lock = NSLock()
        init(_ threads: Int) { values = Array(repeating: 0, count: threads) }
        func set(_ thread: Int, _ count: Int) { lock.withLock { values[thread] = count } }
        var total: Int { lock.withLock { values.reduce(0, +) } }
    }
}
