import BrokerSync

/// A short-lived verdict that the database is down, so that while it is, requests are refused at
/// once instead of each waiting a whole connect timeout (issue 12: a 503 within a bounded time).
///
/// The verdict is reached when waiting for a connection fails while the pool had room for one:
/// the pool tried to connect and could not (a pool whose every connection is busy is exhausted,
/// not down, and says nothing about the database). While it stands, ``admit()`` refuses; after
/// `retryInterval` the next transaction is let through alone as a probe (the others are still
/// refused), and a connection leased by it or by any waiter clears the verdict. How the probe
/// checks the database is the store's business (a direct connection, see ``PostgresPool``).
///
/// ```swift
/// let breaker = ConnectionBreaker(poolSize: 10, retryInterval: .seconds(1), probeTimeout: .seconds(5))
/// if case .refused = breaker.admit() { throw StoreError.unavailable("…") }
/// ```
final class ConnectionBreaker: Sendable {
    enum Admission: Equatable {
        case admitted
        /// Admitted while the database is presumed down: the one transaction that checks it.
        case probe
        /// The database was found down `since` ago; the next probe is due in `retryIn`.
        case refused(since: Duration, retryIn: Duration)
    }

    private enum Verdict {
        case up
        case down(since: ContinuousClock.Instant, retryAt: ContinuousClock.Instant)
        case probing(since: ContinuousClock.Instant, started: ContinuousClock.Instant)
    }

    private struct State {
        var verdict = Verdict.up
        /// Connections leased and not yet given back.
        var leased = 0
    }

    private let poolSize: Int
    private let retryInterval: Duration
    /// A probe that has neither leased nor failed after this long is presumed lost (a cancelled
    /// request), and another one may go.
    private let probeTimeout: Duration
    private let now: @Sendable () -> ContinuousClock.Instant
    private let state = Locked(State())

    init(
        poolSize: Int, retryInterval: Duration, probeTimeout: Duration,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.poolSize = max(1, poolSize)
        self.retryInterval = retryInterval
        self.probeTimeout = probeTimeout
        self.now = now
    }

    /// Whether a transaction may try to lease a connection now.
    func admit() -> Admission {
        let now = self.now()
        return self.state.withLock { state in
            switch state.verdict {
            case .up:
                return .admitted
            case .down(let since, let retryAt):
                guard now >= retryAt else { return .refused(since: since.duration(to: now), retryIn: now.duration(to: retryAt)) }
                state.verdict = .probing(since: since, started: now)
                return .probe
            case .probing(let since, let started):
                guard started.duration(to: now) >= self.probeTimeout else {
                    return .refused(since: since.duration(to: now), retryIn: .zero)
                }
                state.verdict = .probing(since: since, started: now)
                return .probe
            }
        }
    }

    /// Whether the database is presumed down now (for tests and diagnostics).
    var isDown: Bool {
        self.state.withLock { state in
            if case .up = state.verdict { return false }
            return true
        }
    }

    /// A connection was leased: the database answers.
    func leased() {
        self.state.withLock { state in
            state.leased += 1
            state.verdict = .up
        }
    }

    /// A leased connection was given back.
    func returned() {
        self.state.withLock { state in state.leased = max(0, state.leased - 1) }
    }

    /// Waiting for a connection failed. The database is presumed down unless every connection of
    /// the pool was leased (then the pool was exhausted: busy, not down).
    func leaseFailed() {
        let now = self.now()
        self.state.withLock { state in
            guard state.leased < self.poolSize else { return }
            let since: ContinuousClock.Instant
            switch state.verdict {
            case .up: since = now
            case .down(let first, _), .probing(let first, _): since = first
            }
            state.verdict = .down(since: since, retryAt: now.advanced(by: self.retryInterval))
        }
    }
}
