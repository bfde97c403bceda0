import BrokerSync
import Foundation

/// How many attempts of one kind (GitHub logins, sign-ups) one client address may make within
/// a sliding window.
///
/// ```swift
/// let policy = AddressThrottlePolicy(configuration)           // github_login_throttle_* keys
/// let signUps = AddressThrottlePolicy.signUps(configuration)  // portal_signup_throttle_ip
/// ```
public struct AddressThrottlePolicy: Sendable, Equatable {
    /// Seconds over which attempts are counted.
    public var window: Int
    /// Attempts allowed per client IP (IPv6: its /64) within the window, successful or not.
    public var addressLimit: Int
    /// How many addresses the counter remembers at most (memory bound).
    public var maximumTrackedKeys: Int

    public init(window: Int = 60, addressLimit: Int = 60, maximumTrackedKeys: Int = LoginThrottlePolicy.defaultMaximumTrackedKeys) {
        self.window = window
        self.addressLimit = addressLimit
        self.maximumTrackedKeys = maximumTrackedKeys
    }

    /// GitHub logins: `github_login_throttle_window` and `github_login_throttle_ip`.
    public init(_ configuration: BrokerConfiguration) {
        self.init(
            window: configuration.githubLoginThrottleWindow, addressLimit: configuration.githubLoginThrottleIP,
            maximumTrackedKeys: configuration.loginThrottleTrackedKeys)
    }

    /// The portal's sign-ups: `portal_signup_throttle_ip` per `login_throttle_window`.
    public static func signUps(_ configuration: BrokerConfiguration) -> AddressThrottlePolicy {
        AddressThrottlePolicy(
            window: configuration.loginThrottleWindow, addressLimit: configuration.portalSignupThrottleIP,
            maximumTrackedKeys: configuration.loginThrottleTrackedKeys)
    }
}

public typealias GitHubLoginThrottlePolicy = AddressThrottlePolicy
public typealias GitHubLoginThrottle = AddressThrottle

/// What an ``AddressThrottle`` counts: its counter in the store, its metric's scope, and the
/// attempts its refusal names.
public struct AddressThrottlePurpose: Sendable, Equatable {
    public var counter: ThrottleCounter
    /// The `scope` label of `broker_throttled_total`.
    public var metricScope: String
    /// What is counted, as the refusal says it ("too many GitHub logins from this address").
    public var attempts: String

    /// Every call to GitHub a login makes (a PAT, an exchange, the device flow's start and polls).
    public static let gitHubLogins = AddressThrottlePurpose(counter: .gitHubIP, metricScope: "github_ip", attempts: "GitHub logins")
    /// Accounts created at the portal's sign-up page.
    public static let signUps = AddressThrottlePurpose(counter: .signUpIP, metricScope: "signup_ip", attempts: "sign-ups")
}

/// Counts GitHub logins (a personal access token, token exchange, a session login with a GitHub
/// token, the device flow's start and every poll) per client address over a sliding window,
/// and refuses those over the limit with `429 too_many_attempts` and a `Retry-After` before
/// GitHub is called. Every attempt counts, successful or not: each costs a call to GitHub,
/// whose rate limits the broker's address shares with every client behind it.
///
/// Without a known address (`nil`), attempts share one counter: forgetting to pass the address
/// throttles more, never less.
///
/// Replicas (``ThrottleCounting/shared(_:)``): each attempt is checked and counted in the store
/// in one serializable transaction, so the limit holds exactly for all replicas together; a
/// store failure refuses the login (``StoreError``).
///
/// ```swift
/// let throttle = GitHubLoginThrottle(policy: GitHubLoginThrottlePolicy(configuration), clock: SystemWallClock(), counting: .inProcess)
/// try await throttle.admit(clientIP: "203.0.113.9")   // or 429
/// ```
public final class AddressThrottle: Sendable {
    public let policy: AddressThrottlePolicy
    public let purpose: AddressThrottlePurpose
    public let counting: ThrottleCounting
    private let clock: any WallClock
    private let state: Locked<State>

    public init(
        policy: AddressThrottlePolicy, clock: any WallClock, counting: ThrottleCounting,
        purpose: AddressThrottlePurpose = .gitHubLogins
    ) {
        self.policy = policy
        self.purpose = purpose
        self.clock = clock
        self.counting = counting
        state = Locked(State(table: ThrottleTable(maximum: policy.maximumTrackedKeys)))
    }

    /// Counts one GitHub login from `clientIP`, or refuses it.
    /// - Throws: ``BrokerError`` `too_many_attempts` whose `retryAfter` is the whole seconds
    ///   until the address has room again (at least 1); a ``StoreError`` when shared counters
    ///   cannot be used.
    public func admit(clientIP: String?) async throws {
        let now = clock.now().timeIntervalSince1970
        let key = clientIP.map { IPAddress($0)?.throttleGroup ?? LoginThrottle.boundedKey($0) } ?? "(unknown address)"
        let retryAfter: Int?
        if let counters = counting.sharedCounters {
            let oldest = try await counters.admit(
                ThrottleCounterKey(counter: purpose.counter, key: key), limit: policy.addressLimit, at: now,
                cutoff: now - Double(policy.window), maximumKeys: policy.maximumTrackedKeys)
            retryAfter = oldest.map { max(1, Int(($0 + Double(policy.window) - now).rounded(.up))) }
            if retryAfter != nil { state.withLock { $0.refusals += 1 } }
        } else {
            retryAfter = state.withLock { state in state.admit(key, now: now, policy: policy) }
        }
        guard let retryAfter else { return }
        BrokerMetrics.throttled(scope: purpose.metricScope)
        throw BrokerError(
            .tooManyAttempts, "too many \(purpose.attempts) from this address; try again in \(retryAfter) seconds",
            retryAfter: retryAfter)
    }

    /// How many attempts were refused since start.
    public var throttledDecisions: Int {
        state.withLock { $0.refusals }
    }

    /// How many addresses the counter currently remembers.
    public var trackedKeys: Int {
        state.withLock { $0.table.count }
    }

    private struct State {
        var table: ThrottleTable
        var refusals = 0

        /// `nil` when admitted (and counted), else the seconds to wait. A flood of fresh addresses
        /// never pushes out one with attempts in the window (see ``ThrottleTable``).
        mutating func admit(_ key: String, now: Double, policy: AddressThrottlePolicy) -> Int? {
            let cutoff = now - Double(policy.window)
            let (times, _) = table.times(of: key, cutoff: cutoff)
            if times.count >= policy.addressLimit {
                refusals += 1
                let wait = times.time(whenBelow: policy.addressLimit) + Double(policy.window) - now
                return max(1, Int(wait.rounded(.up)))
            }
            table.record(key, at: now, cutoff: cutoff)
            return nil
        }
    }
}
