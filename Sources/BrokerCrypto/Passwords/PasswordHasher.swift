import COpenSSL

/// Hashes new passwords with argon2id and verifies stored hashes, including the legacy Django
/// formats accounts are migrated with.
///
/// New hashes are argon2id PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<tag>`), the format
/// libargon2, argon2-cffi and most other implementations read, so the store stays portable.
/// ``verify(_:against:)`` also accepts argon2i/argon2d PHC strings, Django's `argon2$…` wrapper and
/// Django's `pbkdf2_sha256$…`/`pbkdf2_sha1$…`, and reports those as needing a rehash.
///
/// Both operations are synchronous and CPU- and memory-bound (tens of milliseconds and
/// `memoryKiB` of RAM each): run them off the event loop, with bounded concurrency.
///
/// ```swift
/// let hasher = PasswordHasher(parameters: .owaspMinimum)
/// let stored = try hasher.hash("correct horse battery staple")
/// guard case .valid(let needsRehash) = hasher.verify(attempt, against: stored) else { throw Denied() }
/// ```
///
/// Passwords are hashed as their UTF-8 bytes, without Unicode normalization, as Django and
/// argon2-cffi do: normalizing here would stop migrated hashes from verifying.
public struct PasswordHasher: Sendable {
    /// The parameters new hashes are made with, and that stored argon2id hashes are compared to.
    public let parameters: Argon2idParameters

    public init(parameters: Argon2idParameters = .owaspMinimum) {
        self.parameters = parameters
    }

    /// Hashes `password` with argon2id under a fresh 16-byte random salt.
    ///
    /// - Returns: a PHC string, `$argon2id$v=19$m=…,t=…,p=…$<salt>$<tag>` (base64 without padding).
    /// - Throws: ``PasswordHashingError`` if the parameters are out of bounds, the random generator
    ///   fails, or libargon2 cannot allocate its memory.
    public func hash(_ password: String) throws -> String {
        var salt = [UInt8](repeating: 0, count: Self.saltLength)
        let status = salt.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32($0.count)) }
        guard status == 1 else { throw PasswordHashingError.randomGenerationFailed }
        return try hash(password, salt: salt)
    }

    /// Checks `password` against a stored hash in any supported format.
    ///
    /// Never throws and never traps on malformed input: a value it cannot parse, a Django unusable
    /// password (`!…`), or parameters beyond the safety ceilings all yield `.invalid`.
    public func verify(_ password: String, against encoded: String) -> PasswordVerification {
        guard let stored = StoredHash(parsing: encoded) else { return .invalid }
        let matches: Bool
        switch stored {
        case .argon2(let argon2, _):
            matches = argon2.matches(password)
        case .pbkdf2(let pbkdf2):
            matches = pbkdf2.matches(password)
        }
        guard matches else { return .invalid }
        return .valid(needsRehash: stored.needsRehash(current: parameters))
    }

    /// Whether `encoded` is a hash ``verify(_:against:)`` can check. Django unusable passwords and
    /// hashes whose parameters exceed the safety ceilings are not supported.
    public static func isSupportedFormat(_ encoded: String) -> Bool {
        StoredHash(parsing: encoded) != nil
    }
}

extension PasswordHasher {
    static let saltLength = 16
    static let tagLength = 32

    /// Hashes with a caller-chosen salt; internal so tests can reproduce the reference vectors.
    func hash(_ password: String, salt: [UInt8]) throws -> String {
        guard parameters.isWithinBounds else { throw PasswordHashingError.invalidParameters(parameters) }
        var stored = StoredHash.Argon2(
            variant: .id, version: StoredHash.Argon2.currentVersion, parameters: parameters, salt: salt, tag: [])
        stored.tag = try stored.computeTag(password, length: Self.tagLength)
        return stored.phcString
    }

    /// Compares two equal-length digests in time independent of where they differ.
    static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        guard !lhs.isEmpty else { return true }
        return lhs.withUnsafeBytes { a in
            rhs.withUnsafeBytes { b in
                CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0
            }
        }
    }

    /// Overwrites a buffer that held password bytes, so the copy does not linger in freed memory.
    static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { buffer in
            if let base = buffer.baseAddress { OPENSSL_cleanse(base, buffer.count) }
        }
    }
}
