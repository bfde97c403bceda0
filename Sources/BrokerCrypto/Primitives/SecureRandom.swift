import CBrokerShims
import COpenSSL

/// Bytes from OpenSSL's CSPRNG.
///
/// ```swift
/// let refreshToken = Base64URL.encode(SecureRandom.bytes(32))
/// let jti = Base64URL.encode(SecureRandom.identifierBytes(16))
/// ```
public enum SecureRandom {
    /// `count` cryptographically secure random bytes, straight from `RAND_bytes`: for secrets
    /// (refresh tokens, salts, keys), which must never sit in memory before they are used.
    ///
    /// Traps if the CSPRNG fails: there is no safe way to carry on without randomness.
    public static func bytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0 && count <= Int(Int32.max), "byte count out of range")
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialised in
            if let base = buffer.baseAddress, count > 0, RAND_bytes(base, Int32(count)) != 1 {
                fatalError("the CSPRNG failed: \(CryptoError.openSSL("RAND_bytes"))")
            }
            initialised = count
        }
    }

    /// Random bytes for public, unique identifiers (a token's `jti`), served from a per-thread
    /// buffer refilled by `RAND_bytes`: a call to OpenSSL 3 costs ~0.8 µs, a noticeable share of
    /// signing a token. Never use these for secrets: they wait in memory before use.
    public static func identifierBytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0, "negative byte count")
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialised in
            if let base = buffer.baseAddress, count > 0, broker_random_bytes(base, count) != 1 {
                fatalError("the CSPRNG failed: \(CryptoError.openSSL("RAND_bytes"))")
            }
            initialised = count
        }
    }
}

/// Compares two byte strings in time that depends only on their length, so that comparing a
/// presented secret with a stored one does not leak how many leading bytes matched.
///
/// Returns false when the lengths differ; lengths are not secret here (digests have a fixed size).
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    guard !a.isEmpty else { return true }
    return a.withUnsafeBytes { left in
        b.withUnsafeBytes { right in
            CRYPTO_memcmp(left.baseAddress, right.baseAddress, left.count) == 0
        }
    }
}
