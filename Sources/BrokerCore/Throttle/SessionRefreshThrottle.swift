import BrokerSync
import Foundation

/// How often one session may be renewed.
///
/// ```swift
/// let policy = SessionRefreshThrottlePolicy(configuration)   // refresh_throttle_* keys
/// ```
public struct SessionRefreshThrottlePolicy: Sendable, Equatable {
    /// Seconds over which renewals are counted.
    public var window: Int
    /// Renewals allowed per session within the window.
    public var sessionLimit: Int

    public init(window: Int = 60, sessionLimit: Int = 6) {
        precondition(window > 0 && sessionLimit > 0, "a refresh throttle must admit something")
        self.window = window
        self.sessionLimit = sessionLimit
    }

    /// The configured limit, raised if needed to what a SlideRule client's own cadence needs:
    /// generation 1 renews at half the access lifetime, which is at most `access_lifetime` and
    /// never below 60 s for an organization's policy, so a session renews at most every
    /// `min(access_lifetime, 60) / 2` seconds. A sliding window holds one more renewal than
    /// fits evenly, and a retried request after a network error one more again.
    public init(_ configuration: BrokerConfiguration) {
        self.init(
            window: configuration.refreshThrottleWindow,
            sessionLimit: max(
                configuration.refreshThrottleSession,
                Self.clientCadence(window: configuration.refreshThrottleWindow, accessLifetime: configuration.accessLifetime)))
    }

    /// Renewals a well-behaved client makes within `window` at the shortest access lifetime.
    public static func clientCadence(window: Int, accessLifetime: Int) -> Int {
        let interval = max(1, min(accessLifetime, 60) / 2)
        return window / interval + 2
    }
}

/// Counts the renewals of each session (generation-1 refresh tokens, `/oauth/token`'s refresh
/// grant, generation-2 `/auth/refresh`) over a sliding window and refuses those over the limit
/// with `429 too_many_attempts` and a `Retry-After`, before anything is written: every renewal
/// adds a refresh token to the store and a line to the audit log, and a client renewing in a
/// loop would otherwise grow both without bound. A refused renewal leaves its refresh token
/// unused: the client retries with the same token after `Retry-After`.
///
/// Only renewals that passed every other check are counted, so the table holds at most the
/// sessions renewed within the last window (each the fruit of a login); a session is forgotten
/// once its window is empty, never while it still counts.
///
/// Replicas (``ThrottleCounting/shared(_:)``): a refresh-token renewal is judged by
/// ``admitRenewal(ofTokenHash:in:)`` first in its transaction, from the store's own record of the
/// session's renewals (the first use of each of its refresh tokens), so the limit holds for the
/// session whichever replicas its renewals reach and nothing is written to count them. (A count
/// written inside the renewal made the renewals of unrelated sessions conflict at SERIALIZABLE;
/// the renewal now runs under its token's lock, ``Store/lockingTransaction(_:)``.) The count is
/// exact: a session's renewals follow one another, each using the token the last one issued, so
/// none can commit between the count and the renewal it admits (a duplicate within the reuse grace
/// issues no new
/// token). Renewals without refresh tokens (a generation-2 GitHub session) count in the store's
/// throttle counters (``admit(sessionID:)``).
///
/// ```swift
/// let throttle = SessionRefreshThrottle(policy: SessionRefreshThrottlePolicy(configuration), clock: SystemWallClock(), counting: .inProcess)
/// try await throttle.admit(sessionID: family.id)   // or 429
/// ```
public final class SessionRefreshThrottle: Sendable {
    public let policy: SessionRefreshThrottlePolicy
    public let counting: ThrottleCounting
    private let clock: any WallClock
    private let state = Locked(State())

    public init(policy: SessionRefreshThrottlePolicy, clock: any WallClock, counting: ThrottleCounting) {
        self.policy = policy
        self.clock = clock
        self.counting = counting
    }

    /// Counts one renewal of the session, or refuses it.
    /// - Throws: ``BrokerError`` `too_many_attempts` whose `retryAfter` is the whole seconds
    ///   until the session may be renewed again (at least 1); a ``StoreError`` when shared
    ///   counters cannot be used.
    public func admit(sessionID: String) async throws {
        let now = clock.now().timeIntervalSince1970
        if let counters = counting.sharedCounters {
            let oldest = try await counters.admit(
                sharedKey(sessionID), limit: policy.sessionLimit, at: now, cutoff: now - Double(policy.window),
                maximumKeys: nil)
            try refuseIfOver(oldest.map { wait(since: $0, now: now) })
            return
        }
        try refuseIfOver(state.withLock { $0.admit(sessionID, now: now, policy: policy) })
    }

    /// The read of a refresh-token renewal, first in its transaction `tx`: the renewal of the
    /// token with hash `tokenHash` (``StoreTransaction/renewal(ofTokenHash:counting:)``, which
    /// locks the token), returned for the renewal to go on with. With shared counting the same
    /// statement counts the session's renewals within the window, and the renewal is refused when
    /// there were `sessionLimit` of them. In this process it only reads: ``check(sessionID:)``
    /// judges.
    /// - Throws: as ``admit(sessionID:)``.
    @discardableResult
    public func admitRenewal(ofTokenHash tokenHash: String, in tx: any StoreTransaction) async throws -> RenewalSnapshot? {
        guard counting.sharedCounters != nil else { return try await tx.renewal(ofTokenHash: tokenHash) }
        let now = clock.now()
        let window = RenewalWindow(after: now.addingTimeInterval(-Double(policy.window)), limit: policy.sessionLimit)
        let renewal = try await tx.renewal(ofTokenHash: tokenHash, counting: window)
        if let oldestCounted = renewal?.limitingRenewal {
            try refuseIfOver(wait(since: oldestCounted.timeIntervalSince1970, now: now.timeIntervalSince1970))
        }
        return renewal
    }

    /// The check of a renewal inside its store transaction, whose body may run more than once: in
    /// this process, it refuses a renewal over the limit and counts nothing (``record(sessionID:)``
    /// counts it once the renewal has committed). With shared counting
    /// ``admitRenewal(ofTokenHash:in:)`` judged, and the renewal's use of its
    /// token is its count.
    public func check(sessionID: String) throws {
        guard counting.sharedCounters == nil else { return }
        let now = clock.now().timeIntervalSince1970
        try refuseIfOver(state.withLock { $0.wait(sessionID, now: now, policy: policy) })
    }

    /// Counts one renewal that ``check(sessionID:)`` let through and that has committed (with
    /// shared counting, its use of its refresh token is its count).
    public func record(sessionID: String) {
        guard counting.sharedCounters == nil else { return }
        let now = clock.now().timeIntervalSince1970
        state.withLock { $0.record(sessionID, now: now, policy: policy) }
    }

    private func sharedKey(_ sessionID: String) -> ThrottleCounterKey {
        ThrottleCounterKey(counter: .refreshSession, key: sessionID)
    }

    private func wait(since oldest: Double, now: Double) -> Int {
        max(1, Int((oldest + Double(policy.window) - now).rounded(.up)))
    }

    private func refuseIfOver(_ retryAfter: Int?) throws {
        guard let retryAfter else { return }
        BrokerMetrics.throttledRefresh()
        throw BrokerError(
            .tooManyAttempts,
            "this session was renewed \(policy.sessionLimit) times in \(policy.window) seconds; try again in \(retryAfter) seconds",
            retryAfter: retryAfter)
    }

    /// How many sessions the counter currently remembers.
    public var trackedSessions: Int {
        state.withLock { $0.table.count }
    }

    private struct State {
        /// The admitted renewals of each session within the window, oldest first.
        var table: [String: [Double]] = [:]
        /// The table's size after the last sweep: the next one comes when it has doubled.
        var sweptSize = 0

        mutating func admit(_ sessionID: String, now: Double, policy: SessionRefreshThrottlePolicy) -> Int? {
            if let wait = wait(sessionID, now: now, policy: policy) { return wait }
            record(sessionID, now: now, policy: policy)
            return nil
        }

        /// The seconds until the session may be renewed again; `nil`: now.
        mutating func wait(_ sessionID: String, now: Double, policy: SessionRefreshThrottlePolicy) -> Int? {
            let cutoff = now - Double(policy.window)
            guard var times = table[sessionID] else { return nil }
            times.removeAll { $0 <= cutoff }
            table[sessionID] = times.isEmpty ? nil : times
            guard times.count >= policy.sessionLimit else { return nil }
            let wait = times[times.count - policy.sessionLimit] + Double(policy.window) - now
            return max(1, Int(wait.rounded(.up)))
        }

        mutating func record(_ sessionID: String, now: Double, policy: SessionRefreshThrottlePolicy) {
            let cutoff = now - Double(policy.window)
            var times = table[sessionID, default: []]
            times.removeAll { $0 <= cutoff }
            times.append(now)
            table[sessionID] = times
            if table.count > max(1024, 2 * sweptSize) { sweep(cutoff: cutoff) }
        }

        /// Forgets the sessions without a renewal inside the window: they count as nothing.
        mutating func sweep(cutoff: Double) {
            table = table.filter { $0.value.contains { $0 > cutoff } }
            sweptSize = table.count
        }
    }
}
