import BrokerCore
import BrokerCrypto
import BrokerSync
import Foundation

/// Remembers, per token, until when GitHub told us to stop calling, so that a rate-limited
/// token costs no further round trips (and does not dig its hole deeper) until the reset.
///
/// Keys are SHA-256 digests of the tokens: the table outlives requests and must not become a
/// store of credentials.
final class RateLimitGate: Sendable {
    private let blockedUntil = Locked<[[UInt8]: Date]>([:])
    private let clock: any WallClock
    /// Bounds the table under a flood of distinct rate-limited tokens.
    private static let maximumEntries = 10_000

    init(clock: any WallClock) {
        self.clock = clock
    }

    static func key(for token: String) -> [UInt8] { Digest.sha256(Array(token.utf8)) }

    /// Throws `.rateLimited` with the seconds left if `key` is still blocked.
    func check(_ key: [UInt8]) throws(GitHubError) {
        let now = clock.now()
        let until = blockedUntil.withLock { table -> Date? in
            guard let until = table[key] else { return nil }
            if until <= now {
                table[key] = nil
                return nil
            }
            return until
        }
        if let until { throw .rateLimited(retryAfter: Self.seconds(from: now, to: until)) }
    }

    /// Blocks `key` for `seconds` from now.
    func block(_ key: [UInt8], seconds: Int) {
        let now = clock.now()
        let until = now.addingTimeInterval(TimeInterval(seconds))
        blockedUntil.withLock { table in
            if table.count >= Self.maximumEntries {
                table = table.filter { $0.value > now }
                if table.count >= Self.maximumEntries, let soonest = table.min(by: { $0.value < $1.value }) {
                    table[soonest.key] = nil
                }
            }
            table[key] = max(table[key] ?? until, until)
        }
    }

    /// Whole seconds from `now` to `until`, rounded up, at least 1.
    static func seconds(from now: Date, to until: Date) -> Int {
        max(1, Int(until.timeIntervalSince(now).rounded(.up)))
    }
}
