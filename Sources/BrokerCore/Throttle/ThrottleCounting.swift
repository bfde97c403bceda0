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

    /// The longest window any throttle setting admits (`*_throttle_window`): a stored time older
    /// than this counts for nothing whatever the configuration (``StoragePruner`` deletes it).
    public static let longestWindow = 86_400

    var sharedCounters: StoreThrottleCounters? {
        if case .shared(let counters) = self { return counters }
        return nil
    }
}

/// A counter the throttles keep in the store (shared counting), by the name stored in
/// `throttle_times.counter`.
public enum ThrottleCounter: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Failed logins per (username, client IP) (``LoginThrottle``, ``ThrottleScope/userAndIP``).
    case loginUserAndIP = "login.user_ip"
    /// Failed logins per username, from every address.
    case loginUser = "login.user"
    /// Failed logins per client IP, against every username.
    case loginIP = "login.ip"
    /// GitHub logins per client IP (``GitHubLoginThrottle``).
    case gitHubIP = "github.ip"
    /// Sign-ups at the portal per client IP (``AddressThrottle``, ``AddressThrottlePurpose/signUps``).
    case signUpIP = "signup.ip"
    /// Renewals of a generation-2 session without refresh tokens (``SessionRefreshThrottle``).
    case refreshSession = "refresh.session"

    /// The counter of failed logins in `scope`.
    public static func login(_ scope: ThrottleScope) -> ThrottleCounter {
        switch scope {
        case .userAndIP: .loginUserAndIP
        case .user: .loginUser
        case .ip: .loginIP
        }
    }

    public var description: String { rawValue }
}

/// One time a key of a throttle counter counts in the store.
public struct ThrottleTime: Sendable, Hashable, Comparable {
    public var countedAt: Date
    /// Until when an attempt in flight holds this time (``LoginThrottle``): it takes a place in
    /// the budget, but is no failure yet, and is deleted if the attempt is no guess. Past it, it
    /// counts as a failure: the replica that held it is presumed gone, and the guess may have
    /// been evaluated. `nil`: a failure, or an attempt counted at once.
    public var heldUntil: Date?

    public init(countedAt: Date, heldUntil: Date? = nil) {
        self.countedAt = countedAt
        self.heldUntil = heldUntil
    }

    /// Whether an attempt in flight still holds it at `now`.
    public func isHeld(at now: Date) -> Bool {
        heldUntil.map { $0 > now } ?? false
    }

    public static func < (lhs: ThrottleTime, rhs: ThrottleTime) -> Bool {
        lhs.countedAt < rhs.countedAt
    }
}

/// One key of one throttle counter as the store keeps it: the counter's name and the key's
/// SHA-256 (so that no username or address is stored in clear, every key has the same bounded
/// length, and a NUL, which PostgreSQL text refuses, never reaches the database).
public struct ThrottleCounterKey: Sendable, Hashable, CustomStringConvertible {
    public var counter: ThrottleCounter
    /// The key's digest, or ``overflowSubject`` for the counter's overflow key.
    public var subject: String

    /// The subject of a counter's overflow key (see ``ThrottleTable``): never a digest.
    public static let overflowSubject = "overflow"

    public init(counter: ThrottleCounter, subject: String) {
        self.counter = counter
        self.subject = subject
    }

    /// The stored key of `key` (a username, an address, a pair, a session) in `counter`.
    public init(counter: ThrottleCounter, key: String) {
        self.init(counter: counter, subject: Digest.sha256Hex(key))
    }

    /// The overflow key of `counter`.
    public static func overflow(of counter: ThrottleCounter) -> ThrottleCounterKey {
        ThrottleCounterKey(counter: counter, subject: overflowSubject)
    }

    public var isOverflow: Bool { subject == Self.overflowSubject }

    /// The key as one 64-bit number (for a database's advisory locks, see
    /// ``StoreTransaction/lockThrottleKeys(_:)``): bits of the SHA-256 of its counter and
    /// subject, so that two keys share one only by a collision.
    public var lockID: Int64 {
        Digest.sha256(Array("throttle_times/\(counter.rawValue)/\(subject)".utf8)).prefix(8)
            .reduce(Int64(0)) { ($0 << 8) | Int64($1) }
    }

    public var description: String { "\(counter)/\(subject)" }

    /// What each of `keys` counts given the stored `times` of keys and overflow keys: its own
    /// times, or its counter's overflow times when it has none (see ``ThrottleTable``). For the
    /// stores' ``StoreTransaction/throttleTimes(_:after:)``.
    public static func counted(
        _ keys: [ThrottleCounterKey], from times: [ThrottleCounterKey: [ThrottleTime]]
    ) -> [ThrottleCounterKey: [ThrottleTime]] {
        var counted: [ThrottleCounterKey: [ThrottleTime]] = [:]
        for key in keys {
            let own = times[key] ?? []
            let chosen = own.isEmpty ? times[.overflow(of: key.counter)] ?? [] : own
            if !chosen.isEmpty { counted[key] = chosen.sorted() }
        }
        return counted
    }
}

/// One counter an attempt must find room in (``StoreThrottleCounters/hold(_:at:cutoff:until:maximumKeys:)``).
public struct ThrottleBudget: Sendable, Equatable {
    public var key: ThrottleCounterKey
    public var limit: Int

    public init(key: ThrottleCounterKey, limit: Int) {
        self.key = key
        self.limit = limit
    }
}

/// What ``StoreThrottleCounters/hold(_:at:cutoff:until:maximumKeys:)`` decided.
public enum ThrottleHold: Sendable, Equatable {
    /// Every budget had room: the attempt holds one time in each (their `ids`, for settling), and
    /// `failures[i]` failures counted in budget `i` before it.
    case held(ids: [Int64], failures: [Int])
    /// Budget `index` counts its limit of failures: the attempt may go once the failure at
    /// `oldest` (seconds since 1970) leaves the window (the budget that frees last is named).
    case full(index: Int, oldest: Double)
    /// Budget `index` has room for failures, but attempts in flight hold it: the attempt may go
    /// if they turn out not to fail.
    case busy(index: Int)
}

/// The throttle counters of every replica on one store, as times in the store's
/// `throttle_times` table (see ``StoreTransaction/recordThrottleTime(_:at:cutoff:maximumKeys:heldUntil:)``).
///
/// Bounded like ``ThrottleTable``: recording a time deletes the times that left the window of
/// its counter, and at most `maximumKeys` keys per counter hold times of their own; further keys
/// share the counter's overflow key, limited like any other. So a flood of fresh keys can grow
/// the table to at most `(maximumKeys + 1) × limit` times per counter, and cannot escape the
/// limit: it meets the overflow's.
///
/// Every decision reads and counts in one transaction holding its keys' locks
/// (``Store/lockingTransaction(_:)``), so a limit holds exactly for every replica together,
/// attempts at the same instant included; attempts on one key wait for each other's
/// transactions rather than abort them (PostgreSQL's serializable checks would abort all but one
/// of the logins from one address arriving at once, and run them again). Every failure is a store
/// error: the throttles let it through to the caller (`503 store_unavailable` for an unreachable
/// database), so an attempt is refused, never let through uncounted.
public struct StoreThrottleCounters: Sendable {
    public let store: any Store

    public init(store: any Store) {
        self.store = store
    }

    /// In one transaction: holds a place for an attempt in flight in every budget, unless one of
    /// them counts its limit of failures (``ThrottleHold/full(index:oldest:)``) or of failures
    /// and attempts in flight (``ThrottleHold/busy(index:)``). A time held past `heldUntil`
    /// counts as a failure (its replica is presumed gone).
    public func hold(
        _ budgets: [ThrottleBudget], at now: Double, cutoff: Double, until heldUntil: Double, maximumKeys: Int?
    ) async throws -> ThrottleHold {
        let keys = budgets.map(\.key)
        let moment = Date(timeIntervalSince1970: now)
        return try await store.lockingTransaction { tx in
            try await tx.lockThrottleKeys(keys)
            let times = try await tx.throttleTimes(keys, after: Date(timeIntervalSince1970: cutoff))
            var full: (index: Int, oldest: Double)?
            var busy: Int?
            var failures: [Int] = []
            for (index, budget) in budgets.enumerated() {
                let counted = times[budget.key] ?? []
                let failed = counted.filter { !$0.isHeld(at: moment) }
                failures.append(failed.count)
                if failed.count >= budget.limit {
                    let oldest = failed[failed.count - budget.limit].countedAt.timeIntervalSince1970
                    if oldest > full?.oldest ?? -.infinity { full = (index, oldest) }
                } else if counted.count >= budget.limit, busy == nil {
                    busy = index
                }
            }
            if let full { return .full(index: full.index, oldest: full.oldest) }
            if let busy { return .busy(index: busy) }
            let ids = try await tx.recordThrottleTime(
                keys, at: moment, cutoff: Date(timeIntervalSince1970: cutoff), maximumKeys: maximumKeys,
                heldUntil: Date(timeIntervalSince1970: heldUntil))
            return .held(ids: ids, failures: failures)
        }
    }

    /// The attempt holding `ids` failed: in one transaction its held times give way to failures
    /// of `keys` at `now`.
    public func fail(
        holding ids: [Int64], counting keys: [ThrottleCounterKey], at now: Double, cutoff: Double, maximumKeys: Int?
    ) async throws {
        try await store.lockingTransaction { tx in
            try await tx.lockThrottleKeys(keys)
            try await tx.deleteThrottleTimes(ids: ids)
            try await tx.recordThrottleTime(
                keys, at: Date(timeIntervalSince1970: now), cutoff: Date(timeIntervalSince1970: cutoff),
                maximumKeys: maximumKeys, heldUntil: nil)
        }
    }

    /// The attempt holding `ids` was no failure: they are deleted, and `forgotten` (a pair whose
    /// password was right) with them.
    public func release(holding ids: [Int64], forgetting forgotten: ThrottleCounterKey? = nil) async throws {
        try await store.lockingTransaction { tx in
            if let forgotten { try await tx.lockThrottleKeys([forgotten]) }
            try await tx.deleteThrottleTimes(ids: ids)
            if let forgotten { try await tx.forgetThrottleKey(forgotten) }
        }
    }

    /// In one transaction (exact across replicas: it holds the key's lock): counts `now` for
    /// `key` unless it already counts `limit` times after `cutoff`.
    /// - Returns: `nil` when counted; else the time whose leaving the window brings the key
    ///   below `limit`.
    public func admit(
        _ key: ThrottleCounterKey, limit: Int, at now: Double, cutoff: Double, maximumKeys: Int?
    ) async throws -> Double? {
        try await store.lockingTransaction { tx in
            try await tx.lockThrottleKeys([key])
            let times = try await tx.throttleTimes([key], after: Date(timeIntervalSince1970: cutoff))[key] ?? []
            if times.count >= limit {
                return times[times.count - limit].countedAt.timeIntervalSince1970
            }
            try await tx.recordThrottleTime(
                [key], at: Date(timeIntervalSince1970: now), cutoff: Date(timeIntervalSince1970: cutoff),
                maximumKeys: maximumKeys, heldUntil: nil)
            return nil
        }
    }
}
