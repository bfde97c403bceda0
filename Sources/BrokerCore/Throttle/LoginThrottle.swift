import BrokerCrypto
import Foundation
import Synchronization

/// The counter of failed logins that refused an attempt.
public enum ThrottleScope: String, Sendable, CaseIterable {
    /// One username from one client IP: someone mistyping, or a targeted guesser.
    case userAndIP = "user_ip"
    /// One username from every address: password spraying from many addresses.
    case user
    /// One client IP (IPv6: its /64) against every username.
    case ip
}

/// How many failed logins ``LoginThrottle`` allows within its sliding window.
///
/// ```swift
/// let policy = LoginThrottlePolicy(configuration)   // login_throttle_* keys
/// let strict = LoginThrottlePolicy(window: 60, userAndIPLimit: 3, userLimit: 10, ipLimit: 50)
/// ```
public struct LoginThrottlePolicy: Sendable, Equatable {
    /// Seconds over which failures are counted.
    public var window: Int
    public var userAndIPLimit: Int
    public var userLimit: Int
    public var ipLimit: Int
    /// How many usernames, addresses or pairs each counter remembers at most (memory bound).
    public var maximumTrackedKeys: Int

    public static let defaultMaximumTrackedKeys = 10_000

    public init(
        window: Int = 900, userAndIPLimit: Int = 5, userLimit: Int = 20, ipLimit: Int = 100,
        maximumTrackedKeys: Int = Self.defaultMaximumTrackedKeys
    ) {
        self.window = window
        self.userAndIPLimit = userAndIPLimit
        self.userLimit = userLimit
        self.ipLimit = ipLimit
        self.maximumTrackedKeys = maximumTrackedKeys
    }

    public init(_ configuration: BrokerConfiguration) {
        self.init(
            window: configuration.loginThrottleWindow, userAndIPLimit: configuration.loginThrottleUserIP,
            userLimit: configuration.loginThrottleUser, ipLimit: configuration.loginThrottleIP)
    }

    public func limit(for scope: ThrottleScope) -> Int {
        switch scope {
        case .userAndIP: userAndIPLimit
        case .user: userLimit
        case .ip: ipLimit
        }
    }
}

/// A login attempt ``LoginThrottle`` let through. It already counts as a failure; the caller
/// reports a right password with ``LoginThrottle/recordSuccess(_:)`` or an outcome that says
/// nothing about the password with ``LoginThrottle/withdraw(_:)``.
public struct LoginAttempt: Sendable {
    struct Count: Sendable {
        var scope: ThrottleScope
        var key: String
        var time: Double
    }

    let counts: [Count]
    /// The counters this attempt fills to their limit, should it turn out a failure: the
    /// moment throttling starts, worth one log line.
    public let reachesLimit: [ThrottleScope]
}

/// Counts failed logins per (username, client IP), per username and per client IP over a
/// sliding window, and refuses attempts over a limit with `429 too_many_attempts` and a
/// `Retry-After` before the password is looked at. It throttles; it never locks an account.
///
/// An admitted attempt is counted as a failure at once, not when its hash is done: otherwise
/// an attacker sending many guesses at the same moment would have them all evaluated before
/// the first failure were counted. A right password takes its count back.
///
/// Memory: a counter keeps at most `limit` times per key, and each counter at most
/// ``LoginThrottlePolicy/maximumTrackedKeys`` keys. When a counter is full, keys whose failures
/// have all left the window go first, then the keys whose last failure is oldest (a tenth of
/// the table at once, so a flood pays for the sort rarely). Forgetting a key can only let an
/// attempt through that would have been refused, never refuse one, and the keys an attack is
/// busy with are the freshest, so the last to go.
///
/// ```swift
/// let throttle = LoginThrottle(policy: LoginThrottlePolicy(configuration), clock: SystemWallClock())
/// let attempt = try throttle.admit(username: "alice", clientIP: "203.0.113.9")  // or 429
/// if passwordIsRight { throttle.recordSuccess(attempt) }
/// ```
public final class LoginThrottle: Sendable {
    public let policy: LoginThrottlePolicy
    private let clock: any WallClock
    private let state = Mutex(State())

    public init(policy: LoginThrottlePolicy, clock: any WallClock) {
        self.policy = policy
        self.clock = clock
    }

    /// Admits an attempt and counts it as a failure, or refuses it.
    ///
    /// - Parameter clientIP: the client's address; `nil` (no IP transport) leaves only the
    ///   per-username counter.
    /// - Throws: ``BrokerError`` `too_many_attempts` whose `retryAfter` is the whole seconds
    ///   until every counter involved has room again (at least 1).
    public func admit(username: String, clientIP: String?) throws -> LoginAttempt {
        let now = clock.now().timeIntervalSince1970
        let keys = Self.counterKeys(username: username, clientIP: clientIP)
        let decision = state.withLock { state in state.admit(keys, now: now, policy: policy) }
        switch decision {
        case .admitted(let attempt):
            return attempt
        case .refused(let scope, let retryAfter):
            BrokerMetrics.throttled(scope)
            throw BrokerError(.tooManyAttempts, Self.explanation(scope, retryAfter: retryAfter), retryAfter: retryAfter)
        }
    }

    /// The password was right: the attempt no longer counts, and the (username, client IP)
    /// counter starts afresh. The per-username and per-IP counts of other attempts stay, so
    /// one right password does not reset a spraying attack against other accounts or from
    /// other addresses.
    public func recordSuccess(_ attempt: LoginAttempt) {
        state.withLock { state in
            for count in attempt.counts {
                if count.scope == .userAndIP {
                    state.tables[count.scope]?[count.key] = nil
                } else {
                    state.take(back: count)
                }
            }
        }
    }

    /// The attempt was no guess (a right password on a disabled account, a store failure): it
    /// no longer counts.
    public func withdraw(_ attempt: LoginAttempt) {
        state.withLock { state in
            for count in attempt.counts { state.take(back: count) }
        }
    }

    /// How many attempts `scope` refused since start (the decisive counter when several were full).
    public func throttledDecisions(in scope: ThrottleScope) -> Int {
        state.withLock { $0.refusals[scope, default: 0] }
    }

    /// How many keys `scope` currently remembers.
    public func trackedKeys(in scope: ThrottleScope) -> Int {
        state.withLock { $0.tables[scope]?.count ?? 0 }
    }

    /// Usernames of Django's rule have at most 150 characters; anything much longer names no
    /// account, and is remembered by its digest so that no key is longer than 256 bytes.
    static func boundedKey(_ text: String) -> String {
        text.utf8.count <= 256 ? text : "sha256:" + Digest.sha256Hex(text)
    }

    static func counterKeys(username: String, clientIP: String?) -> [(ThrottleScope, String)] {
        let user = boundedKey(username)
        guard let clientIP else { return [(.user, user)] }
        let address = IPAddress(clientIP)?.throttleGroup ?? boundedKey(clientIP)
        // NUL separates: an address never contains one, so no two pairs share a key.
        return [(.userAndIP, user + "\u{0}" + address), (.user, user), (.ip, address)]
    }

    static func explanation(_ scope: ThrottleScope, retryAfter: Int) -> String {
        let what =
            switch scope {
            case .userAndIP: "too many failed logins for this username from this address"
            case .user: "too many failed logins for this username"
            case .ip: "too many failed logins from this address"
            }
        return "\(what); try again in \(retryAfter) seconds"
    }
}

private enum Decision {
    case admitted(LoginAttempt)
    case refused(ThrottleScope, retryAfter: Int)
}

private struct State {
    var tables: [ThrottleScope: [String: FailureTimes]] = [:]
    var refusals: [ThrottleScope: Int] = [:]

    mutating func admit(_ keys: [(ThrottleScope, String)], now: Double, policy: LoginThrottlePolicy) -> Decision {
        let cutoff = now - Double(policy.window)
        var refusal: (scope: ThrottleScope, retryAfter: Int)?
        for (scope, key) in keys {
            guard var times = tables[scope]?[key] else { continue }
            times.dropExpired(through: cutoff)
            tables[scope]?[key] = times.isEmpty ? nil : times
            let limit = policy.limit(for: scope)
            guard times.count >= limit else { continue }
            let wait = times.time(whenBelow: limit) + Double(policy.window) - now
            let retryAfter = max(1, Int(wait.rounded(.up)))
            // The attempt may go once every counter has room: report the longest wait.
            if retryAfter > refusal?.retryAfter ?? 0 { refusal = (scope, retryAfter) }
        }
        if let refusal {
            refusals[refusal.scope, default: 0] += 1
            return .refused(refusal.scope, retryAfter: refusal.retryAfter)
        }
        var counts: [LoginAttempt.Count] = []
        var reachesLimit: [ThrottleScope] = []
        for (scope, key) in keys {
            if tables[scope]?[key] == nil {
                makeRoom(in: scope, cutoff: cutoff, maximum: policy.maximumTrackedKeys)
            }
            let time = tables[scope, default: [:]][key, default: FailureTimes()].append(now)
            counts.append(LoginAttempt.Count(scope: scope, key: key, time: time))
            if tables[scope]?[key]?.count == policy.limit(for: scope) { reachesLimit.append(scope) }
        }
        return .admitted(LoginAttempt(counts: counts, reachesLimit: reachesLimit))
    }

    mutating func take(back count: LoginAttempt.Count) {
        guard var times = tables[count.scope]?[count.key] else { return }
        times.remove(count.time)
        tables[count.scope]?[count.key] = times.isEmpty ? nil : times
    }

    /// Leaves room for one more key in `scope`'s table (see ``LoginThrottle``).
    mutating func makeRoom(in scope: ThrottleScope, cutoff: Double, maximum: Int) {
        guard var table = tables[scope], table.count >= maximum else { return }
        table = table.compactMapValues { times in
            var times = times
            times.dropExpired(through: cutoff)
            return times.isEmpty ? nil : times
        }
        let target = maximum - max(1, maximum / 10)
        if table.count > target {
            let stalest = table.sorted { $0.value.newest < $1.value.newest }.prefix(table.count - target)
            for (key, _) in stalest { table[key] = nil }
        }
        tables[scope] = table
    }
}

/// The failure times of one key, oldest first, as seconds since 1970.
private struct FailureTimes {
    private var times: [Double] = []
    /// Times before this index have left the window; removed in bulk, not one by one.
    private var start = 0

    var count: Int { times.count - start }
    var isEmpty: Bool { count == 0 }
    /// The latest failure (only asked of non-empty keys).
    var newest: Double { times.last ?? 0 }

    /// Counts a failure at `now`, or at the latest failure if the clock went back, so that
    /// the times stay in order; returns the time counted.
    mutating func append(_ now: Double) -> Double {
        let time = max(now, times.last ?? now)
        times.append(time)
        return time
    }

    /// Forgets the failures at or before `cutoff`: they left the window.
    mutating func dropExpired(through cutoff: Double) {
        while start < times.count && times[start] <= cutoff { start += 1 }
        if start == times.count {
            times = []
            start = 0
        } else if start >= 16 && start * 2 >= times.count {
            times.removeFirst(start)
            start = 0
        }
    }

    /// The time of the failure whose leaving brings the count below `limit`.
    func time(whenBelow limit: Int) -> Double {
        times[start + count - limit]
    }

    /// Takes back one failure counted at `time`.
    mutating func remove(_ time: Double) {
        if let index = times[start...].lastIndex(of: time) { times.remove(at: index) }
    }
}
