/// Why ``PasswordHasher/hash(_:)`` could not produce a hash.
///
/// Verification never throws (a stored value it cannot use is simply ``PasswordVerification/invalid``);
/// only creating a hash can fail, and only for reasons an operator must fix, so each case says which.
///
/// ```swift
/// do { encoded = try hasher.hash(password) }
/// catch let error as PasswordHashingError { logger.error("cannot hash passwords: \(error)") }
/// ```
public enum PasswordHashingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The configured argon2id parameters are outside what libargon2 accepts or the broker allows.
    case invalidParameters(Argon2idParameters)
    /// OpenSSL's random generator could not produce a salt.
    case randomGenerationFailed
    /// libargon2 returned an error code (typically it could not allocate the requested memory).
    case argon2Failed(code: Int32)

    public var description: String {
        switch self {
        case .invalidParameters(let p):
            return "invalid argon2id parameters m=\(p.memoryKiB),t=\(p.iterations),p=\(p.parallelism): "
                + "need 1 ≤ p ≤ \(Argon2idParameters.maximumParallelism), "
                + "1 ≤ t ≤ \(Argon2idParameters.maximumIterations), "
                + "8·p ≤ m ≤ \(Argon2idParameters.maximumMemoryKiB) KiB"
        case .randomGenerationFailed:
            return "the random generator could not produce a salt"
        case .argon2Failed(let code):
            return "argon2id hashing failed (libargon2 error \(code))"
        }
    }
}
