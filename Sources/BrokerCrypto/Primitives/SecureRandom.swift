import CBrokerShims
import COpenSSL

/// Bytes from OpenSSL's CSPRNG, for token identifiers, refresh tokens and salts.
///
/// ```swift
/// let jti = Base64URL.encode(SecureRandom.bytes(16))
/// ```
public enum SecureRandom {
    /// `count` cryptographically secure random bytes.
    ///
    /// Traps if the CSPRNG fails: every caller uses these bytes as secrets or unique
    /// identifiers, and there is no safe way to carry on without them.
    public static func bytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0, "negative byte count")
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialised in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initialised = count
        }
    }

    /// Fills `buffer` with random bytes without allocating.
    static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        guard broker_random_bytes(base.assumingMemoryBound(to: UInt8.self), buffer.count) == 1 else {
            fatalError("the CSPRNG failed: \(CryptoError.openSSL("RAND_bytes"))")
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
