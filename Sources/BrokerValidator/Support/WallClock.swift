import BrokerSync
import Foundation

/// The source of "now" for every rule that depends on time (lifetimes, grace windows, expiry).
/// Injected so that tests move time forward instead of sleeping.
///
/// ```swift
/// let clock: any WallClock = SystemWallClock()
/// let seconds = Int64(clock.now().timeIntervalSince1970)
/// ```
public protocol WallClock: Sendable {
    func now() -> Date
}

/// The real time of the machine.
///
/// ```swift
/// let checks = AccessTokenChecks(issuer: issuer, leeway: 30)
/// let claims = try checks.verify(bearer, audience: nil, now: SystemWallClock().now()) { keys[$0] }
/// ```
public struct SystemWallClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that only moves when told to; for tests.
///
/// ```swift
/// let clock = ManualWallClock(Date(timeIntervalSince1970: 1_800_000_000))
/// clock.advance(by: 3600)
/// ```
public final class ManualWallClock: WallClock {
    private let current: Locked<Date>

    public init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        current = Locked(start)
    }

    public func now() -> Date { current.withLock { $0 } }

    public func advance(by seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }

    public func set(_ date: Date) {
        current.withLock { $0 = date }
    }
}
