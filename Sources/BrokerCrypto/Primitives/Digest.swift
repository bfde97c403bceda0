import COpenSSL

/// Hash functions used by JOSE (RFC 7638 thumbprints, signing inputs) and by callers that
/// store secrets as digests (refresh tokens).
///
/// ```swift
/// let stored = Digest.sha256(Array(refreshToken.utf8))
/// let successor = Digest.hmacSHA256(key: serverSecret, message: Array(presented.utf8))
/// ```
public enum Digest {
    /// The size of a SHA-256 digest in bytes.
    public static let sha256Size = 32

    /// SHA-256 of `bytes`.
    public static func sha256(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        if let digest = bytes.withContiguousStorageIfAvailable({ sha256(UnsafeRawBufferPointer($0)) }) {
            return digest
        }
        return Array(bytes).withUnsafeBytes { sha256($0) }
    }

    /// SHA-256 of `bytes`. (The common case, without generic dispatch.)
    /// Lower-case hex of the SHA-256 of `text`'s UTF-8: how a secret (a refresh token, a GitHub
    /// token, a device code) is stored or used as a cache key without keeping the secret.
    public static func sha256Hex(_ text: String) -> String {
        let digest = sha256(Array(text.utf8))
        let digits: StaticString = "0123456789abcdef"
        return String(unsafeUninitializedCapacity: digest.count * 2) { buffer in
            digits.withUTF8Buffer { digits in
                for (index, byte) in digest.enumerated() {
                    buffer[2 * index] = digits[Int(byte >> 4)]
                    buffer[2 * index + 1] = digits[Int(byte & 0x0F)]
                }
            }
            return digest.count * 2
        }
    }

    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { sha256($0) }
    }

    /// SHA-256 of the bytes in `buffer`.
    public static func sha256(_ buffer: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: sha256Size) { output, count in
            sha256(buffer, into: output.baseAddress!)
            count = sha256Size
        }
    }

    /// Writes the 32-byte SHA-256 of `buffer` to `output`, without allocating a Swift array.
    static func sha256(_ buffer: UnsafeRawBufferPointer, into output: UnsafeMutablePointer<UInt8>) {
        let ok = withNonNullBase(buffer) { base, count in
            EVP_Digest(base, count, output, nil, OpenSSLAlgorithms.sha256.pointer, nil)
        }
        // Hashing memory we own can only fail when OpenSSL cannot allocate; carrying on with
        // an unset digest would sign or compare garbage.
        guard ok == 1 else { fatalError("SHA-256 failed: \(CryptoError.openSSL("EVP_Digest"))") }
    }

    /// HMAC-SHA-256 of `message` under `key` (RFC 2104).
    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        guard let context = EVP_MAC_CTX_new(OpenSSLAlgorithms.hmac.pointer) else {
            fatalError("HMAC failed: \(CryptoError.openSSL("EVP_MAC_CTX_new"))")
        }
        defer { EVP_MAC_CTX_free(context) }
        var output = [UInt8](repeating: 0, count: sha256Size)
        // OSSL_PARAM keeps the pointers it is given, so both strings must outlive EVP_MAC_init:
        // static strings live in the binary.
        let ok: Bool = {
            var parameters = [
                OSSL_PARAM_construct_utf8_string(staticCString("digest"), mutableStaticCString("SHA256"), 0),
                OSSL_PARAM_construct_end(),
            ]
            let initialised = key.withUnsafeBytes { keyBytes in
                withNonNullBase(keyBytes) { base, count in
                    EVP_MAC_init(context, base, count, &parameters)
                }
            }
            guard initialised == 1 else { return false }
            let updated = message.withUnsafeBytes { bytes in
                withNonNullBase(bytes) { base, count in EVP_MAC_update(context, base, count) }
            }
            guard updated == 1 else { return false }
            var length = 0
            return output.withUnsafeMutableBufferPointer { out in
                EVP_MAC_final(context, out.baseAddress, &length, sha256Size) == 1 && length == sha256Size
            }
        }()
        guard ok else { fatalError("HMAC failed: \(CryptoError.openSSL("EVP_MAC"))") }
        return output
    }
}
