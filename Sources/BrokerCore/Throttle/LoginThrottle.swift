import BrokerCrypto
import BrokerSync
import Foundation

/// The counter of failed logins that refused an attempt.
public enum ThrottleScope: String, Sendable, CaseIterable {
    /// One username from one client IP: someone mistyping, or a targeted guesser.
    case userAndIP = "user_ip"
    /// One username from every address: password spraying from many addresses.
    case user
    /// One client IP (IPv6: its /64) against every username.
    case ip
}

/// How many failed logins ``LoginThrottle`` allows within its sliding window, and how attempts
/// beyond the remaining budget wait for the ones in flight.
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
    /// How many attempts may wait on one counter for the attempts in flight to finish; more are
    /// refused at once.
    public var queueLength: Int
    /// How long (real time) an attempt waits for the attempts in flight before it is refused.
    public var queueWait: Duration

    public static let defaultMaximumTrackedKeys = 10_000
    public static let defaultQueueLength = 64
    public static let defaultQueueWait = Duration.seconds(10)

    public init(
        window: Int = 900, userAndIPLimit: Int = 5, userLimit: Int = 20, ipLimit: Int = 100,
        maximumTrackedKeys: Int = Self.defaultMaximumTrackedKeys, queueLength: Int = Self.defaultQueueLength,
        queueWait: Duration = Self.defaultQueueWait
    ) {
        self.window = window
        self.userAndIPLimit = userAndIPLimit
        self.userLimit = userLimit
        self.ipLimit = ipLimit
        self.maximumTrackedKeys = maximumTrackedKeys
        self.queueLength = queueLength
        self.queueWait = queueWait
    }

    public init(_ configuration: BrokerConfiguration) {
        self.init(
            window: configuration.loginThrottleWindow, userAndIPLimit: configuration.loginThrottleUserIP,
            userLimit: configuration.loginThrottleUser, ipLimit: configuration.loginThrottleIP,
            maximumTrackedKeys: configuration.loginThrottleTrackedKeys)
    }

    public func limit(for scope: ThrottleScope) -> Int {
        switch scope {
        case .userAndIP: userAndIPLimit
        case .user: userLimit
        case .ip: ipLimit
        }
    }
}

/// A login attempt ``LoginThrottle`` let through, in flight until the caller settles it exactly
/// once: ``LoginThrottle/failed(_:)`` for a wrong password, ``LoginThrottle/succeeded(_:)`` for a
/// right one, ``LoginThrottle/withdrawn(_:)`` for an outcome that says nothing about the password
/// (or their synchronous forms in one process). Settling twice changes nothing.
public struct LoginAttempt: Sendable {
    let id: UInt64
    /// The times the attempt holds in the store's counters (shared counting), for settling.
    var heldTimes: [Int64] = []
    /// The failures the store counted for each scope at admission (shared counting): whether this
    /// failure fills a counter, for the log.
    var sharedFailures: [ThrottleScope: Int] = [:]
}

/// Counts failed logins per (username, client IP), per username and per client IP over a
/// sliding window, and refuses attempts over a limit with `429 too_many_attempts` and a
/// `Retry-After` before the password is looked at. It throttles; it never locks an account.
///
/// The guarantee: per counter, the failures in the window plus the attempts in flight never
/// exceed the limit, so at most `limit` wrong passwords are evaluated per window and key, however
/// many guesses arrive at the same moment. An attempt that would exceed it while some of the
/// budget is only *in flight* (not yet failed) waits for those attempts to finish instead of
/// being refused: sixteen workers logging in with the right password at once all get in, while
/// a flood of wrong ones is refused as soon as the in-flight ones have failed. The wait is
/// bounded in length (``LoginThrottlePolicy/queueLength`` waiters per counter) and in time
/// (``LoginThrottlePolicy/queueWait``); past either bound the attempt is refused with
/// `Retry-After: 1`.
///
/// Memory: a counter keeps at most `limit` times per key, and each counter at most
/// ``LoginThrottlePolicy/maximumTrackedKeys`` keys (``ThrottleTable``). Only keys whose failures
/// have all left the window are forgotten: a key with a failure inside the window is never
/// pushed out by fresh ones, so a flood of other usernames cannot start a throttled account
/// afresh. When every key of a counter still holds a failure, keys new to it share one overflow
/// key with the same limit (an attempt holds it in flight too), and a key that gets a place of
/// its own while the overflow holds failures starts with them. Under such a flood new usernames
/// (or addresses) are refused sooner than they would be alone, never later.
///
/// Replicas (``ThrottleCounting/shared(_:)``): the budget is kept in the store, so that it holds
/// for every replica together, attempts arriving at several replicas at the same instant
/// included. An admission, in one serializable transaction, reads the key's times and, if every
/// counter has room, holds a place in each for the attempt in flight
/// (``StoreThrottleCounters/hold(_:at:cutoff:until:maximumKeys:)``); a failure turns its places
/// into failures, a right password or a withdrawal deletes them. An attempt that finds the budget
/// held by attempts in flight (on any replica) waits, as in one process, woken by the ones
/// settling here and reading the store again every ``sharedPollInterval`` for the others. A
/// place still held ``attemptHold`` after its admission counts as a failure: its replica is
/// presumed gone (killed mid-login), and the guess may have been evaluated. A store that cannot
/// be read or written refuses the login (``StoreError``, `503 store_unavailable`); a failure the
/// store could not count keeps its places held, which count as failures once the hold ends.
///
/// ```swift
/// let throttle = LoginThrottle(policy: LoginThrottlePolicy(configuration), clock: SystemWallClock(), counting: .inProcess)
/// let attempt = try await throttle.admit(username: "alice", clientIP: "203.0.113.9")  // or 429
/// if passwordIsRight { try await throttle.succeeded(attempt) } else { try await throttle.failed(attempt) }
/// ```
public final class LoginThrottle: Sendable {
    public let policy: LoginThrottlePolicy
    public let counting: ThrottleCounting
    private let clock: any WallClock
    private let state: Locked<State>

    public init(policy: LoginThrottlePolicy, clock: any WallClock, counting: ThrottleCounting) {
        self.policy = policy
        self.clock = clock
        self.counting = counting
        state = Locked(State(maximumTrackedKeys: policy.maximumTrackedKeys))
    }

    /// How long a place held in the store for an attempt in flight counts only against the budget
    /// (shared counting); past it, it counts as a failure. Far longer than a login takes (its
    /// store calls are bounded by the connect and statement timeouts, the hash by the pool).
    public static let attemptHold: Double = 30

    /// How often an attempt waiting for attempts in flight on other replicas reads the store again.
    static let sharedPollInterval = Duration.milliseconds(100)

    /// The store's key of a counter of this throttle.
    static func sharedKey(_ counter: CounterKey) -> ThrottleCounterKey {
        ThrottleCounterKey(counter: .login(counter.scope), key: counter.key)
    }

    /// Admits an attempt (in flight until settled), waits for room while attempts in flight hold
    /// the remaining budget, or refuses it.
    ///
    /// - Parameter clientIP: the client's address; `nil` (no IP transport) leaves only the
    ///   per-username counter.
    /// - Throws: ``BrokerError`` `too_many_attempts` whose `retryAfter` is the whole seconds
    ///   until every counter involved has room again (at least 1); `CancellationError` when the
    ///   task is cancelled while waiting; a ``StoreError`` when shared counters cannot be read.
    public func admit(username: String, clientIP: String?) async throws -> LoginAttempt {
        let keys = Self.counterKeys(username: username, clientIP: clientIP).map { CounterKey(scope: $0.0, key: $0.1) }
        let deadline = ContinuousClock.now + policy.queueWait
        let id = state.withLock { state in state.newID() }
        if let counters = counting.sharedCounters {
            return try await admitShared(id: id, keys: keys, counters: counters, deadline: deadline)
        }
        while true {
            try Task.checkCancellation()
            let now = clock.now().timeIntervalSince1970
            let decision = await decideOrWait(id: id, keys: keys, deadline: deadline, poll: nil) { state, continuation in
                state.decide(id: id, keys, now: now, policy: self.policy, continuation: continuation)
            }
            switch decision {
            case .admitted:
                return LoginAttempt(id: id)
            case .retry, .queued:
                continue
            default:
                try refuse(decision, keys: keys)
            }
        }
    }

    /// ``admit(username:clientIP:)`` with the budget in the store: each round holds places in one
    /// transaction, or finds the budget full (refused) or held by attempts in flight (waits).
    private func admitShared(
        id: UInt64, keys: [CounterKey], counters: StoreThrottleCounters, deadline: ContinuousClock.Instant
    ) async throws -> LoginAttempt {
        let budgets = keys.map { ThrottleBudget(key: Self.sharedKey($0), limit: policy.limit(for: $0.scope)) }
        while true {
            try Task.checkCancellation()
            let now = clock.now().timeIntervalSince1970
            let hold = try await counters.hold(
                budgets, at: now, cutoff: now - Double(policy.window), until: now + Self.attemptHold,
                maximumKeys: policy.maximumTrackedKeys)
            switch hold {
            case .held(let ids, let failures):
                state.withLock { state in state.fly(id, keys) }
                var counted: [ThrottleScope: Int] = [:]
                for (counter, failures) in zip(keys, failures) { counted[counter.scope] = failures }
                return LoginAttempt(id: id, heldTimes: ids, sharedFailures: counted)
            case .full(let index, let oldest):
                let retryAfter = max(1, Int((oldest + Double(policy.window) - now).rounded(.up)))
                let scope = keys[index].scope
                state.withLock { state in state.refusals[scope, default: 0] += 1 }
                try refuse(.refused(scope, retryAfter: retryAfter), keys: keys)
            case .busy:
                // Woken by an attempt settling here, or after a poll interval for other replicas'.
                let decision = await decideOrWait(id: id, keys: keys, deadline: deadline, poll: Self.sharedPollInterval) {
                    state, continuation in
                    state.queue(id: id, keys, policy: self.policy, continuation: continuation)
                }
                switch decision {
                case .retry, .queued: continue
                default: try refuse(decision, keys: keys)
                }
            }
        }
    }

    /// Takes a decision under the lock (`decide`, which may keep the continuation to wait) and,
    /// when it waits, sets its timer: the deadline, or `poll` (a waiter then decides again).
    private func decideOrWait(
        id: UInt64, keys: [CounterKey], deadline: ContinuousClock.Instant, poll: Duration?,
        _ decide: @escaping @Sendable (inout State, CheckedContinuation<Decision, Never>) -> Decision
    ) async -> Decision {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let decision = self.state.withLock { state in decide(&state, continuation) }
                guard case .queued = decision else {
                    continuation.resume(returning: decision)
                    return
                }
                let remaining = deadline - ContinuousClock.now
                let timer = Task { [weak self] in
                    if let poll, poll < remaining {
                        try? await Task.sleep(for: poll)
                        if !Task.isCancelled { self?.wake(id, with: .retry) }
                    } else {
                        try? await Task.sleep(for: remaining)
                        if !Task.isCancelled { self?.wake(id, with: .gaveUp(timedOut: true)) }
                    }
                }
                self.state.withLock { state in state.setTimer(timer, of: id) }
            }
        } onCancel: {
            self.wake(id, with: .gaveUp(timedOut: false))
        }
    }

    /// Throws what a decision other than admitting or trying again means.
    private func refuse(_ decision: Decision, keys: [CounterKey]) throws -> Never {
        switch decision {
        case .refused(let scope, let retryAfter):
            BrokerMetrics.throttled(scope)
            throw BrokerError(.tooManyAttempts, Self.explanation(scope, retryAfter: retryAfter), retryAfter: retryAfter)
        case .queueFull(let scope):
            BrokerMetrics.throttled(scope)
            throw BrokerError(.tooManyAttempts, Self.busyExplanation(scope), retryAfter: 1)
        case .gaveUp(let timedOut):
            guard timedOut else { throw CancellationError() }
            let scope = keys.first.map(\.scope) ?? .user
            state.withLock { state in state.refusals[scope, default: 0] += 1 }
            BrokerMetrics.throttled(scope)
            throw BrokerError(.tooManyAttempts, Self.busyExplanation(scope), retryAfter: 1)
        case .admitted, .queued, .retry:
            preconditionFailure("not a refusal: \(decision)")
        }
    }

    /// The password was wrong (or the account unknown): the attempt becomes a failure in every
    /// counter. With shared counting its places in the store become failures, before the attempts
    /// waiting here are woken (so that they read them); if the store cannot count it, its places
    /// stay held, and count as failures once their hold ends.
    /// - Returns: as ``recordFailure(_:)``.
    /// - Throws: a ``StoreError`` when the store could not count it.
    @discardableResult
    public func failed(_ attempt: LoginAttempt) async throws -> [ThrottleScope] {
        guard let counters = counting.sharedCounters else { return recordFailure(attempt) }
        guard let keys = state.withLock({ $0.inFlightAttempts[attempt.id] }) else { return [] }
        let now = clock.now().timeIntervalSince1970
        let (cutoff, maximumKeys) = (now - Double(policy.window), policy.maximumTrackedKeys)
        do {
            try await Self.uncancelled {
                try await counters.fail(
                    holding: attempt.heldTimes, counting: keys.map(Self.sharedKey), at: now, cutoff: cutoff,
                    maximumKeys: maximumKeys)
            }
        } catch {
            land(attempt)
            throw error
        }
        land(attempt)
        return ThrottleScope.allCases.filter { scope in
            guard let before = attempt.sharedFailures[scope] else { return false }
            return before < policy.limit(for: scope) && before + 1 >= policy.limit(for: scope)
        }
    }

    /// The password was right: as ``recordSuccess(_:)``; with shared counting the attempt's places
    /// are deleted and the shared (username, client IP) key forgotten. A store failure there is
    /// ignored: it leaves the counters stricter (the places count as failures once their hold
    /// ends), never looser.
    public func succeeded(_ attempt: LoginAttempt) async {
        guard let counters = counting.sharedCounters else { return recordSuccess(attempt) }
        let pair = state.withLock { $0.inFlightAttempts[attempt.id] }?.first { $0.scope == .userAndIP }
        try? await Self.uncancelled {
            try await counters.release(holding: attempt.heldTimes, forgetting: pair.map(Self.sharedKey))
        }
        recordSuccess(attempt)
    }

    /// The attempt was no guess: as ``withdraw(_:)``, and with shared counting its places are
    /// deleted before the attempts waiting here are woken (a store failure leaves them held, as in
    /// ``succeeded(_:)``).
    public func withdrawn(_ attempt: LoginAttempt) async {
        if let counters = counting.sharedCounters, !attempt.heldTimes.isEmpty {
            try? await Self.uncancelled { try await counters.release(holding: attempt.heldTimes) }
        }
        land(attempt)
    }

    /// Settles the attempt in this process and wakes those waiting on its keys.
    private func land(_ attempt: LoginAttempt) {
        let woken = state.withLock { state in
            guard let keys = state.settle(attempt.id) else { return [Waiter]() }
            return state.waiters(sharing: keys)
        }
        Self.resume(woken)
    }

    /// Runs `body` in a task of its own: settling an attempt in the store must not be cut short
    /// because the request that made it was cancelled (a client that hung up).
    private static func uncancelled(_ body: @escaping @Sendable () async throws -> Void) async throws {
        try await Task { try await body() }.value
    }

    /// The password was wrong (or the account unknown): the attempt becomes a failure in every
    /// counter of this process (``failed(_:)`` also counts it in the store).
    /// - Returns: the counters this failure fills to their limit, the moment throttling starts,
    ///   worth one log line.
    @discardableResult
    public func recordFailure(_ attempt: LoginAttempt) -> [ThrottleScope] {
        let now = clock.now().timeIntervalSince1970
        let (filled, woken) = state.withLock { state in
            guard let keys = state.settle(attempt.id) else { return ([ThrottleScope](), [Waiter]()) }
            var filled: [ThrottleScope] = []
            for counter in keys where !counter.isOverflow {
                let limit = policy.limit(for: counter.scope)
                let count = state.record(counter, at: now, cutoff: now - Double(policy.window))
                if count.before < limit && count.after >= limit { filled.append(counter.scope) }
            }
            return (filled, state.waiters(sharing: keys))
        }
        Self.resume(woken)
        return filled
    }

    /// The password was right: the attempt no longer counts, and the (username, client IP)
    /// counter starts afresh. The per-username and per-IP failures of other attempts stay, so
    /// one right password does not reset a spraying attack against other accounts or from
    /// other addresses.
    public func recordSuccess(_ attempt: LoginAttempt) {
        let woken = state.withLock { state in
            guard let keys = state.settle(attempt.id) else { return [Waiter]() }
            for counter in keys where counter.scope == .userAndIP && !counter.isOverflow {
                state.forget(counter)
            }
            return state.waiters(sharing: keys)
        }
        Self.resume(woken)
    }

    /// The attempt was no guess (a right password on a disabled account, a store failure, a
    /// cancelled request): it no longer counts. With shared counting its places in the store are
    /// deleted in the background (``withdrawn(_:)`` waits for that).
    public func withdraw(_ attempt: LoginAttempt) {
        if let counters = counting.sharedCounters, !attempt.heldTimes.isEmpty {
            Task { try? await counters.release(holding: attempt.heldTimes) }
        }
        land(attempt)
    }

    /// How many attempts `scope` refused since start (the decisive counter when several were full).
    public func throttledDecisions(in scope: ThrottleScope) -> Int {
        state.withLock { $0.refusals[scope, default: 0] }
    }

    /// How many keys `scope` currently remembers.
    public func trackedKeys(in scope: ThrottleScope) -> Int {
        state.withLock { $0.tables[scope]?.count ?? 0 }
    }

    /// How many failures `scope`'s overflow key holds: those of keys that found every place of
    /// the counter taken by a key with failures in the window.
    public func overflowFailures(in scope: ThrottleScope) -> Int {
        state.withLock { $0.tables[scope]?.overflowCount ?? 0 }
    }

    /// How many admitted attempts are not settled yet.
    public var attemptsInFlight: Int {
        state.withLock { $0.inFlightAttempts.count }
    }

    /// How many attempts wait for the attempts in flight.
    public var waitingAttempts: Int {
        state.withLock { $0.waiting.count }
    }

    private func wake(_ id: UInt64, with decision: Decision) {
        let waiter = state.withLock { state in state.removeWaiter(id) }
        if let waiter { Self.resume([waiter], with: decision) }
    }

    private static func resume(_ waiters: [Waiter], with decision: Decision = .retry) {
        for waiter in waiters {
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: decision)
        }
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
        "\(subject(scope)); try again in \(retryAfter) seconds"
    }

    static func busyExplanation(_ scope: ThrottleScope) -> String {
        "\(subject(scope)) while other logins are still being checked; try again in 1 seconds"
    }

    private static func subject(_ scope: ThrottleScope) -> String {
        switch scope {
        case .userAndIP: "too many failed logins for this username from this address"
        case .user: "too many failed logins for this username"
        case .ip: "too many failed logins from this address"
        }
    }
}

struct CounterKey: Hashable, Sendable {
    var scope: ThrottleScope
    var key: String
    /// The overflow key of `scope` (see ``ThrottleTable``), which an attempt holds in flight
    /// besides its own key when its own has no place in the table.
    var isOverflow = false

    static func overflow(of scope: ThrottleScope) -> CounterKey {
        CounterKey(scope: scope, key: "", isOverflow: true)
    }
}

private enum Decision: Sendable {
    case admitted
    case refused(ThrottleScope, retryAfter: Int)
    /// Waiting: the continuation is kept and resumed with `.retry` or `.gaveUp`.
    case queued
    case queueFull(ThrottleScope)
    /// Something in flight settled (or, with shared counting, it is time to read the store
    /// again): decide again.
    case retry
    case gaveUp(timedOut: Bool)
}

private struct Waiter {
    var keys: [CounterKey]
    var continuation: CheckedContinuation<Decision, Never>
    var timer: Task<Void, Never>?
}

private struct State {
    let maximumTrackedKeys: Int
    /// Settled failures.
    var tables: [ThrottleScope: ThrottleTable] = [:]
    var refusals: [ThrottleScope: Int] = [:]
    /// Admitted, unsettled attempts and the counters they hold.
    var inFlightAttempts: [UInt64: [CounterKey]] = [:]
    var inFlight: [CounterKey: Int] = [:]
    var waiting: [UInt64: Waiter] = [:]
    var queued: [CounterKey: Int] = [:]
    var lastID: UInt64 = 0

    init(maximumTrackedKeys: Int) {
        self.maximumTrackedKeys = maximumTrackedKeys
    }

    mutating func newID() -> UInt64 {
        lastID += 1
        return lastID
    }

    /// Admits, refuses or queues (keeping `continuation`) the attempt `id`.
    mutating func decide(
        id: UInt64, _ keys: [CounterKey], now: Double, policy: LoginThrottlePolicy,
        continuation: CheckedContinuation<Decision, Never>
    ) -> Decision {
        let cutoff = now - Double(policy.window)
        var refusal: (scope: ThrottleScope, retryAfter: Int)?
        var busy: CounterKey?
        var held: [CounterKey] = []
        for counter in keys {
            let limit = policy.limit(for: counter.scope)
            let (times, overflows) = tables[counter.scope, default: ThrottleTable(maximum: maximumTrackedKeys)]
                .times(of: counter.key, cutoff: cutoff)
            if times.count >= limit {
                let wait = times.time(whenBelow: limit) + Double(policy.window) - now
                let retryAfter = max(1, Int(wait.rounded(.up)))
                // The attempt may go once every counter has room: report the longest wait.
                if retryAfter > refusal?.retryAfter ?? 0 { refusal = (counter.scope, retryAfter) }
                continue
            }
            held.append(counter)
            if times.count + inFlight[counter, default: 0] >= limit, busy == nil { busy = counter }
            if overflows {
                // Its failure will count in the overflow key: attempts in flight there share its budget.
                let shared = CounterKey.overflow(of: counter.scope)
                held.append(shared)
                if times.count + inFlight[shared, default: 0] >= limit, busy == nil { busy = shared }
            }
        }
        if let refusal {
            refusals[refusal.scope, default: 0] += 1
            return .refused(refusal.scope, retryAfter: refusal.retryAfter)
        }
        if busy != nil {
            return queue(id: id, held, policy: policy, continuation: continuation)
        }
        fly(id, held)
        return .admitted
    }

    /// Keeps the attempt `id` waiting on `keys` (its continuation resumed when one of them
    /// settles, or by its timer), unless as many wait on one of them as the queue takes.
    mutating func queue(
        id: UInt64, _ keys: [CounterKey], policy: LoginThrottlePolicy,
        continuation: CheckedContinuation<Decision, Never>
    ) -> Decision {
        if let full = keys.first(where: { queued[$0, default: 0] >= policy.queueLength }) {
            refusals[full.scope, default: 0] += 1
            return .queueFull(full.scope)
        }
        for counter in keys { queued[counter, default: 0] += 1 }
        waiting[id] = Waiter(keys: keys, continuation: continuation)
        return .queued
    }

    /// Puts the attempt `id` in flight on `keys`.
    mutating func fly(_ id: UInt64, _ keys: [CounterKey]) {
        for counter in keys { inFlight[counter, default: 0] += 1 }
        inFlightAttempts[id] = keys
    }

    /// Ends the attempt `id`'s flight; `nil` when it was settled already.
    mutating func settle(_ id: UInt64) -> [CounterKey]? {
        guard let keys = inFlightAttempts.removeValue(forKey: id) else { return nil }
        for counter in keys {
            let remaining = inFlight[counter, default: 1] - 1
            inFlight[counter] = remaining > 0 ? remaining : nil
        }
        return keys
    }

    mutating func setTimer(_ timer: Task<Void, Never>, of id: UInt64) {
        if waiting[id] != nil {
            waiting[id]?.timer = timer
        } else {
            timer.cancel()
        }
    }

    mutating func removeWaiter(_ id: UInt64) -> Waiter? {
        guard let waiter = waiting.removeValue(forKey: id) else { return nil }
        for counter in waiter.keys {
            let remaining = queued[counter, default: 1] - 1
            queued[counter] = remaining > 0 ? remaining : nil
        }
        return waiter
    }

    /// Takes out the waiters that wait on any of `keys`: something changed for them.
    mutating func waiters(sharing keys: [CounterKey]) -> [Waiter] {
        let ids = waiting.filter { _, waiter in waiter.keys.contains { keys.contains($0) } }.keys
        return ids.compactMap { removeWaiter($0) }
    }

    /// Counts a failure for `counter` (see ``ThrottleTable/record(_:at:cutoff:)``).
    mutating func record(_ counter: CounterKey, at now: Double, cutoff: Double) -> (before: Int, after: Int) {
        tables[counter.scope, default: ThrottleTable(maximum: maximumTrackedKeys)].record(counter.key, at: now, cutoff: cutoff)
    }

    mutating func forget(_ counter: CounterKey) {
        tables[counter.scope]?.remove(counter.key)
    }
}

/// The failure (or attempt) times of one key, oldest first, as seconds since 1970.
struct FailureTimes {
    private var times: [Double] = []
    /// Times before this index have left the window; removed in bulk, not one by one.
    private var start = 0

    var count: Int { times.count - start }
    var isEmpty: Bool { count == 0 }
    /// The latest failure (only asked of non-empty keys).
    var newest: Double { times.last ?? 0 }

    /// Counts a failure at `now`, or at the latest failure if the clock went back, so that
    /// the times stay in order.
    mutating func append(_ now: Double) {
        times.append(max(now, times.last ?? now))
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

    /// The times, oldest first.
    var values: ArraySlice<Double> { times[start...] }

    /// The time of the failure whose leaving brings the count below `limit`.
    func time(whenBelow limit: Int) -> Double {
        times[start + count - limit]
    }
}
