import BrokerCrypto
import Foundation
import Logging

/// Checks a username and password against the store. Unknown users, users without a password
/// and wrong passwords all cost one hash verification and give the same error; a disabled
/// account is only reported once its password was right. A migrated hash (Django PBKDF2) or
/// one with outdated parameters is replaced by a fresh argon2id hash on success.
public struct PasswordAuthenticator: Sendable {
    public let store: any Store
    public let pool: PasswordHashingPool
    public let logger: Logger

    public init(store: any Store, pool: PasswordHashingPool, logger: Logger) {
        self.store = store
        self.pool = pool
        self.logger = logger
    }

    public func authenticate(username: String, password: String) async throws -> User {
        let found = try await store.transaction { tx in try await tx.user(named: username) }
        guard let user = found, let encoded = user.passwordHash else {
            try await pool.verifyDummy(password)
            throw Self.invalidCredentials
        }
        let verification = try await pool.verify(password, against: encoded)
        guard case .valid(let needsRehash) = verification else { throw Self.invalidCredentials }
        guard user.isActive else {
            throw BrokerError(.accountDisabled, "this account is disabled")
        }
        if needsRehash {
            await rehash(user, password: password, previous: encoded)
        }
        return user
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
