import BrokerCrypto
import Foundation

/// Where the throttles (``LoginThrottle``, ``GitHubLoginThrottle``, ``SessionRefreshThrottle``)
/// keep their counters: in this process's memory when it is the only broker on its store
/// (SQLite), in the store when replicas share it (PostgreSQL), so that a limit holds for all of
/// them together instead of once per replica.
///
/// ```swift
/// let counting = ThrottleCounting(for: store)   // .shared on PostgreSQL, .inProcess on SQLite
/// let throttle = LoginThrottle(policy: policy, clock: clock, counting: counting)
/// ```
public enum ThrottleCounting: Sendable {
    /// In memory, bounded by ``ThrottleTable``: one broker process on its store.
    case inProcess
    /// In the store (``StoreThrottleCounters``): every replica on the store counts as one.
    case shared(StoreThrottleCounters)

    /// The counting a store needs: shared when other replicas may use it.
    public init(for store: any Store) {
        self = store.isSharedByReplicas ? .shared(StoreThrottleCounters(store: store)) : .inProcess
    }

    /// Every counter the throttles keep in the store.
    public static var storedCounters: [String] {
        ThrottleScope.allCases.map(LoginThrottle.sharedCounter)
            + [GitHubLoginThrottle.sharedCounter, SessionRefreshThrottle.sharedCounter]
    }

    /// The longest window any throttle setting admits (`*_throttle_window`): a stored time older
    /// than this counts for nothing whatever the configuration (``StoragePruner`` deletes it).
    public static let longestWindow = 86_400

    var sharedCounters: StoreThrottleCounters? {
        if case .shared(let counters) = self { return counters }
        return nil
    }
}

/// One key of one throttle counter as the store keeps it: the counter's name and the key's
/// SHA-256 (so that no username or address is stored in clear, every key has the same bounded
/// length, and a NUL, which PostgreSQL text refuses, never reaches the database).
public struct ThrottleCounterKey: Sendable, Hashable, CustomStringConvertible {
    /// `login.user_ip`, `login.user`, `login.ip`, `github.ip` or `refresh.session`.
    public var counter: String
    /// The key's digest, or ``overflowSubject`` for the counter's overflow key.
    public var subject: String

    /// The subject of a counter's overflow key (see ``ThrottleTable``): never a digest.
    public static let overflowSubject = "overflow"

    public init(counter: String, subject: String) {
        self.counter = counter
        self.subject = subject
    }

    /// The stored key of `key` (a username, an address, a pair, a session) in `counter`.
    public init(counter: String, key: String) {
        self.init(counter: counter, subject: Digest.sha256Hex(key))
    }

    /// The overflow key of `counter`.
    public static func overflow(of counter: String) -> ThrottleCounterKey {
        ThrottleCounterKey(counter: counter, subject: overflowSubject)
    }

    public var isOverflow: Bool { subject == Self.overflowSubject }

    public var description: String { "\(counter)/\(subject)" }

    /// What each of `keys` counts given the stored `times` of keys and overflow keys: its own
    /// times, or its counter's overflow times when it has none (see ``ThrottleTable``). For the
    /// stores' ``StoreTransaction/throttleTimes(_:after:)``.
    public static func counted(
        _ keys: [ThrottleCounterKey], from times: [ThrottleCounterKey: [Date]]
    ) -> [ThrottleCounterKey: [Date]] {
        var counted: [ThrottleCounterKey: [Date]] = [:]
        for key in keys {
            let own = times[key] ?? []
            let chosen = own.isEmpty ? times[.overflow(of: key.counter)] ?? [] : own
            if !chosen.isEmpty { counted[key] = chosen.sorted() }
        }
        return counted
    }
}

/// The throttle counters of every replica on one store, as times in the store's
/// `throttle_times` table (see ``StoreTransaction/recordThrottleTime(_:at:cutoff:maximumKeys:)``).
///
/// Bounded like ``ThrottleTable``: recording a time deletes the times that left the window of
/// its counter, and at most `maximumKeys` keys per counter hold times of their own; further keys
/// share the counter's overflow key, limited like any other. So a flood of fresh keys can grow
/// the table to at most `(maximumKeys + 1) × limit` times per counter (plus what replicas
/// admitted at the same instant), and cannot escape the limit: it meets the overflow's.
///
/// Every failure is a store error: the throttles let it through to the caller (`503
/// store_unavailable` for an unreachable database), so a login is refused, never let through
/// uncounted.
public struct StoreThrottleCounters: Sendable {
    public let store: any Store

    public init(store: any Store) {
        self.store = store
    }

    /// What each key counts after `cutoff` (seconds since 1970), oldest first; keys counting
    /// nothing are absent. A read-only snapshot: one round trip on the hot path of a login.
    public func times(of keys: [ThrottleCounterKey], after cutoff: Double) async throws -> [ThrottleCounterKey: [Double]] {
        let times = try await store.read { tx in
            try await tx.throttleTimes(keys, after: Date(timeIntervalSince1970: cutoff))
        }
        return times.mapValues { $0.map(\.timeIntervalSince1970) }
    }

    /// Counts `now` for each key.
    public func record(_ keys: [ThrottleCounterKey], at now: Double, cutoff: Double, maximumKeys: Int?) async throws {
        try await store.transaction { tx in
            try await tx.recordThrottleTime(
                keys, at: Date(timeIntervalSince1970: now), cutoff: Date(timeIntervalSince1970: cutoff),
                maximumKeys: maximumKeys)
        }
    }

    /// Forgets `key`.
    public func forget(_ key: ThrottleCounterKey) async throws {
        try await store.transaction { tx in try await tx.forgetThrottleKey(key) }
    }

    /// In one transaction (exact across replicas: the store serializes it): counts `now` for
    /// `key` unless it already counts `limit` times after `cutoff`.
    /// - Returns: `nil` when counted; else the time whose leaving the window brings the key
    ///   below `limit`.
    public func admit(
        _ key: ThrottleCounterKey, limit: Int, at now: Double, cutoff: Double, maximumKeys: Int?
    ) async throws -> Double? {
        try await store.transaction { tx in
            try await Self.admit(key, limit: limit, at: now, cutoff: cutoff, maximumKeys: maximumKeys, in: tx)
        }
    }

    /// ``admit(_:limit:at:cutoff:maximumKeys:)`` inside the caller's transaction.
    public static func admit(
        _ key: ThrottleCounterKey, limit: Int, at now: Double, cutoff: Double, maximumKeys: Int?,
        in tx: any StoreTransaction
    ) async throws -> Double? {
        let times = try await tx.throttleTimes([key], after: Date(timeIntervalSince1970: cutoff))[key] ?? []
        if times.count >= limit {
            return times[times.count - limit].timeIntervalSince1970
        }
        try await tx.recordThrottleTime(
            [key], at: Date(timeIntervalSince1970: now), cutoff: Date(timeIntervalSince1970: cutoff),
            maximumKeys: maximumKeys)
        return nil
    }
}
