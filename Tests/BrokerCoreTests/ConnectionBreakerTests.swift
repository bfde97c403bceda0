import BrokerSync
import XCTest

@testable import BrokerPostgres

/// The down verdict of the PostgreSQL store (``ConnectionBreaker``), on an injected clock: one
/// failed wait for a connection refuses what follows at once, a probe goes after the retry
/// interval, and a leased connection ends the verdict. An exhausted pool is no verdict.
final class ConnectionBreakerTests: XCTestCase {
    private let start = ContinuousClock.now
    private let elapsed = Locked(Duration.zero)

    private func breaker(poolSize: Int = 2) -> ConnectionBreaker {
        let start = self.start
        let elapsed = self.elapsed
        return ConnectionBreaker(
            poolSize: poolSize, retryInterval: .seconds(1), probeTimeout: .seconds(6),
            now: { start.advanced(by: elapsed.withLock { $0 }) })
    }

    private func advance(_ duration: Duration) { elapsed.withLock { $0 += duration } }

    func testAFailedConnectRefusesTheFollowingTransactionsAtOnceUntilTheRetryInterval() {
        let breaker = self.breaker()
        XCTAssertEqual(breaker.admit(), .admitted)
        breaker.leaseFailed()
        XCTAssertEqual(breaker.admit(), .refused(since: .zero, retryIn: .seconds(1)))
        advance(.milliseconds(400))
        XCTAssertEqual(breaker.admit(), .refused(since: .milliseconds(400), retryIn: .milliseconds(600)))
    }

    func testAfterTheRetryIntervalOneProbeGoesAndTheOthersAreStillRefused() {
        let breaker = self.breaker()
        breaker.leaseFailed()
        advance(.seconds(1))
        XCTAssertEqual(breaker.admit(), .probe, "the probe")
        XCTAssertEqual(breaker.admit(), .refused(since: .seconds(1), retryIn: .zero), "while the probe waits")
        breaker.leaseFailed()
        XCTAssertEqual(
            breaker.admit(), .refused(since: .seconds(1), retryIn: .seconds(1)), "a failed probe: down since the first failure")
        advance(.seconds(1))
        XCTAssertEqual(breaker.admit(), .probe, "the next probe")
        breaker.leased()
        XCTAssertFalse(breaker.isDown)
        XCTAssertEqual(breaker.admit(), .admitted, "the database is back: everyone goes")
        XCTAssertEqual(breaker.admit(), .admitted)
    }

    func testAConnectionLeasedByAnyWaiterEndsTheVerdict() {
        let breaker = self.breaker()
        breaker.leaseFailed()
        breaker.leased()
        XCTAssertEqual(breaker.admit(), .admitted)
    }

    func testALostProbeIsReplacedAfterTheProbeTimeout() {
        let breaker = self.breaker()
        breaker.leaseFailed()
        advance(.seconds(1))
        XCTAssertEqual(breaker.admit(), .probe)
        advance(.seconds(5))
        XCTAssertEqual(
            breaker.admit(), .refused(since: .seconds(6), retryIn: .zero), "the probe may still be waiting for its connect timeout")
        advance(.seconds(1))
        XCTAssertEqual(breaker.admit(), .probe, "the probe never reported: another one goes")
    }

    /// Every connection busy is an exhausted pool, not a database down: no verdict.
    func testAWaitThatFailedWhileEveryConnectionWasLeasedIsNoVerdict() {
        let breaker = self.breaker(poolSize: 2)
        breaker.leased()
        breaker.leased()
        breaker.leaseFailed()
        XCTAssertFalse(breaker.isDown)
        XCTAssertEqual(breaker.admit(), .admitted)
        breaker.returned()
        breaker.leaseFailed()
        XCTAssertTrue(breaker.isDown, "a free slot the pool could not fill: the database did not answer")
    }
}
