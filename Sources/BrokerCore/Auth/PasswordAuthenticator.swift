import BrokerCrypto
import Foundation
import Logging

/// Checks a username and password against the store. Unknown users, users without a password
/// and wrong passwords all cost one hash verification and give the same error; a disabled
/// account is only reported once its password was right. A migrated hash (Django PBKDF2) or
/// one with outdated parameters is replaced by a fresh argon2id hash on success. Failed
/// attempts are throttled (``LoginThrottle``): over a limit the password is not even looked at.
///
/// Timing: a failed login is answered no sooner than ``failureFloor`` after it started (store
/// lookup and verification included), so that an unknown username, today's argon2id, an older
/// argon2 cost and an imported PBKDF2 hash all answer alike. The floor hides every hash whose
/// verification takes less; one that takes longer (PBKDF2 with millions of iterations, an
/// overloaded machine) still shows, and is logged so that an operator can reset it. A right
/// password is not delayed: its answer tells nothing its sender does not know.
///
/// ```swift
/// let user = try await authenticator.authenticate(username: "alice", password: pw, clientIP: "203.0.113.9")
/// ```
public struct PasswordAuthenticator: Sendable {
    public let store: any Store
    public let pool: PasswordHashingPool
    public let throttle: LoginThrottle
    public let logger: Logger
    /// The least time a failed login takes to answer (see above; `login_failure_floor_ms`).
    public let failureFloor: Duration

    public init(store: any Store, pool: PasswordHashingPool, throttle: LoginThrottle, failureFloor: Duration, logger: Logger) {
        self.store = store
        self.pool = pool
        self.throttle = throttle
        self.failureFloor = failureFloor
        self.logger = logger
    }

    /// - Parameter clientIP: the client's address (see ``TrustedProxies``); `nil` when unknown,
    ///   which leaves only the per-username limit.
    /// - Throws: ``BrokerError`` `too_many_attempts` (before any store lookup or hash),
    ///   `invalid_credentials` or `account_disabled`.
    public func authenticate(username: String, password: String, clientIP: String? = nil) async throws -> User {
        // The throttle counts per name as the store finds it: `JOSÉ`, `josé` and a decomposed
        // `josé` are one account, so one counter.
        let attempt = try await throttle.admit(username: AccountName.key(of: username), clientIP: clientIP)
        let started = ContinuousClock.now
        let outcome: Outcome
        do {
            outcome = try await check(username: username, password: password)
        } catch {
            // A store or pool failure says nothing about the password.
            await throttle.withdrawn(attempt)
            throw error
        }
        switch outcome {
        case .unknownUser, .wrongPassword:
            let filled: [ThrottleScope]
            do {
                filled = try await throttle.failed(attempt)
            } catch {
                // The shared counters could not count it: refused like any store failure.
                await padToFailureFloor(since: started, username: outcome == .unknownUser ? nil : username)
                throw error
            }
            if !filled.isEmpty {
                logThrottlingStarts(filled, username: outcome == .unknownUser ? nil : username, clientIP: clientIP)
            }
            await padToFailureFloor(since: started, username: outcome == .unknownUser ? nil : username)
            throw Self.invalidCredentials
        case .disabled:
            // The right password: not a guess, whatever the account's state.
            await throttle.withdrawn(attempt)
            throw BrokerError(.accountDisabled, "this account is disabled")
        case .valid(let user, let needsRehash, let encoded):
            await throttle.succeeded(attempt)
            if needsRehash {
                await rehash(user, password: password, previous: encoded)
            }
            return user
        }
    }

    private enum Outcome: Equatable {
        case unknownUser
        case wrongPassword
        case disabled
        case valid(User, needsRehash: Bool, encoded: String)
    }

    private func check(username: String, password: String) async throws -> Outcome {
        // The account's versions come in the same row as the hash: the session this login may
        // start is recorded only if they are still current then (a reset may commit meanwhile).
        let found = try await store.transaction { tx in try await tx.user(named: username) }
        guard let user = found, let encoded = user.passwordHash else {
            try await pool.verifyDummy(password)
            return found == nil ? .unknownUser : .wrongPassword
        }
        let verification = try await pool.verify(password, against: encoded)
        guard case .valid(let needsRehash) = verification else { return .wrongPassword }
        guard user.isActive else { return .disabled }
        return .valid(user, needsRehash: needsRehash, encoded: encoded)
    }

    /// Once per counter that fills up. The username only when it names an account: what people
    /// type into the username field is sometimes their password.
    private func logThrottlingStarts(_ filled: [ThrottleScope], username: String?, clientIP: String?) {
        logger.notice(
            "login throttling starts",
            metadata: [
                "scopes": "\(filled.map(\.rawValue).joined(separator: ","))",
                "user": "\(username ?? "(unknown)")", "client_ip": "\(clientIP ?? "-")",
            ])
    }

    /// Waits until ``failureFloor`` has passed since `started` (real time: what the client sees).
    private func padToFailureFloor(since started: ContinuousClock.Instant, username: String?) async {
        let elapsed = ContinuousClock.now - started
        guard elapsed < failureFloor else {
            if failureFloor > .zero {
                logger.warning(
                    "a failed login took longer than login_failure_floor_ms: its timing stands out",
                    metadata: [
                        "user": "\(username ?? "(unknown)")",
                        "elapsed_ms": "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)",
                    ])
            }
            return
        }
        // Cancellation (the client went away) ends the wait early: nobody is left to time it.
        try? await Task.sleep(until: started + failureFloor, clock: .continuous)
    }

    static let invalidCredentials = BrokerError(.invalidCredentials, "No active account found with the given credentials")

    /// Best effort: a failure to upgrade the hash must not fail a correct login.
    private func rehash(_ user: User, password: String, previous: String) async {
        do {
            let fresh = try await pool.hash(password)
            try await store.transaction { tx in
                // Only replace the hash we verified: a concurrent `users passwd` wins.
                guard let current = try await tx.user(id: user.id), current.passwordHash == previous else { return }
                try await tx.updatePasswordHash(userID: user.id, to: fresh)
            }
            logger.info("upgraded password hash to argon2id", metadata: ["user": "\(user.username)"])
        } catch {
            logger.error("could not upgrade password hash", metadata: ["user": "\(user.username)", "error": "\(error)"])
        }
    }
}
