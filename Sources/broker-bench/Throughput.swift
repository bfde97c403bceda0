/// Operations per wall-clock second of an async operation with `concurrency` copies in flight,
/// after a short warm-up: the one measuring loop of the async benchmarks.
enum Throughput {
    static func measure(
        seconds: Double, concurrency: Int, warmUp: Int = 16, _ operation: @escaping @Sendable () async throws -> Void
    ) async throws -> Double {
        for _ in 0..<warmUp { try await operation() }
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int(seconds * 1000))
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var count = 0
                    while ContinuousClock.now < deadline {
                        try await operation()
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        return Double(total) / elapsedSeconds(since: start)
    }

    static func elapsedSeconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
