/// The outcome of checking a password against a stored hash.
///
/// A match may still ask for a rehash: the stored hash uses a legacy scheme (Django's PBKDF2) or
/// weaker argon2 parameters than the broker's current ones. The caller then hashes the password it
/// has just seen with ``PasswordHasher/hash(_:)`` and stores the result, which is the only moment a
/// stored hash can be upgraded without asking the user anything.
///
/// ```swift
/// switch hasher.verify(password, against: user.passwordHash) {
/// case .valid(let needsRehash):
///     if needsRehash { try await store.setPasswordHash(try hasher.hash(password), for: user.id) }
/// case .invalid:
///     throw AuthenticationError.invalidCredentials
/// }
/// ```
public enum PasswordVerification: Sendable, Equatable {
    /// The password matches; `needsRehash` says whether the stored hash should be replaced.
    case valid(needsRehash: Bool)
    /// The password does not match, or the stored value is not a usable hash.
    case invalid
}
