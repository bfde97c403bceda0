import COpenSSL

/// Why a sealed value could not be opened, or a key could not be used. Never carries key material
/// or plaintext, so it may be logged as is.
public enum SealingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Too short, or not in any format this version writes.
    case malformed
    /// A format version this broker does not know (written by a newer one).
    case unsupportedFormat(UInt8)
    /// The tag does not match: the wrong key, or the nonce, the ciphertext, the tag or the
    /// context (what the value is) was altered.
    case authenticationFailed
    /// A key of the wrong size (AES-256 takes 32 bytes).
    case invalidKeyLength(Int)
    /// A nonce of the wrong size (96 bits here).
    case invalidNonceLength(Int)
    /// OpenSSL failed for a reason of its own (out of memory).
    case openSSL(String)

    public var description: String {
        switch self {
        case .malformed: "not a sealed value (too short or mangled)"
        case .unsupportedFormat(let version): "a sealed value of unknown format \(version)"
        case .authenticationFailed: "the sealed value does not open: wrong key, or the value or what it is bound to was altered"
        case .invalidKeyLength(let count): "a sealing key must be \(SealingKey.byteCount) bytes, got \(count)"
        case .invalidNonceLength(let count): "an AES-GCM nonce must be \(AESGCM.nonceSize) bytes, got \(count)"
        case .openSSL(let reason): "AES-GCM failed: \(reason)"
        }
    }
}

/// A 256-bit key that seals values (the key-encryption key of a key ring in the database).
/// Its bytes never leave this type except into OpenSSL; it prints as its ``identifier``.
///
/// ```swift
/// let kek = try SealingKey(bytes: decoded)
/// print(kek.identifier)   // "3f9a0c1d2e4b5a69": names the key without revealing it
/// ```
public struct SealingKey: Sendable, CustomStringConvertible {
    public static let byteCount = 32
    fileprivate let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(SealingError) {
        guard bytes.count == Self.byteCount else { throw .invalidKeyLength(bytes.count) }
        self.bytes = bytes
    }

    /// A fresh key from the CSPRNG.
    public static func random() -> SealingKey { SealingKey(unchecked: SecureRandom.bytes(byteCount)) }

    private init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// 16 hex digits of SHA-256("broker kek id" || key): stored beside what the key sealed, so that
    /// opening it with another key says which key is needed, without giving anything away about
    /// either (a one-way function of the key under a label of its own).
    public var identifier: String {
        let digest = Digest.sha256(Array("broker kek id".utf8) + bytes)
        return digest.prefix(8).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }

    public var description: String { "SealingKey(\(identifier))" }
}

/// Authenticated encryption of small secrets (private keys, server secrets) under a
/// ``SealingKey``: AES-256-GCM with a random 96-bit nonce and a 128-bit tag. The `context` is
/// authenticated, not encrypted: it says what the value is (`"broker key ring v1 kid=…"`), so
/// a sealed value cannot be moved into another's place, where it would open under the same key.
///
/// A sealed value is `0x01 || nonce (12) || ciphertext || tag (16)`: the first byte is the
/// format, so another algorithm can be added without guessing.
///
/// ```swift
/// let sealed = Sealing.seal(Array(pem.utf8), under: kek, context: "broker key ring v1 kid=\(kid)")
/// let pem = try Sealing.open(sealed, under: kek, context: "broker key ring v1 kid=\(kid)")
/// ```
public enum Sealing {
    public static let formatVersion: UInt8 = 1

    public static func seal(_ plaintext: [UInt8], under key: SealingKey, context: String) -> [UInt8] {
        let nonce = SecureRandom.bytes(AESGCM.nonceSize)
        do {
            let (ciphertext, tag) = try AESGCM.encrypt(
                key: key.bytes, nonce: nonce, plaintext: plaintext, additionalData: Array(context.utf8))
            return [formatVersion] + nonce + ciphertext + tag
        } catch {
            // Only an allocation failure inside OpenSSL gets here (key and nonce sizes are fixed):
            // there is no way to carry on without sealing.
            fatalError("sealing failed: \(error)")
        }
    }

    public static func open(_ sealed: [UInt8], under key: SealingKey, context: String) throws(SealingError) -> [UInt8] {
        guard let version = sealed.first else { throw .malformed }
        guard version == formatVersion else { throw .unsupportedFormat(version) }
        guard sealed.count >= 1 + AESGCM.nonceSize + AESGCM.tagSize else { throw .malformed }
        let nonce = Array(sealed[1..<(1 + AESGCM.nonceSize)])
        let ciphertext = Array(sealed[(1 + AESGCM.nonceSize)..<(sealed.count - AESGCM.tagSize)])
        let tag = Array(sealed.suffix(AESGCM.tagSize))
        return try AESGCM.decrypt(
            key: key.bytes, nonce: nonce, ciphertext: ciphertext, tag: tag, additionalData: Array(context.utf8))
    }
}

/// AES-256-GCM through OpenSSL's EVP interface, with 96-bit nonces and 128-bit tags only (the
/// sizes NIST SP 800-38D recommends). Public for the known-answer tests; use ``Sealing``.
public enum AESGCM {
    public static let nonceSize = 12
    public static let tagSize = 16

    public static func encrypt(
        key: [UInt8], nonce: [UInt8], plaintext: [UInt8], additionalData: [UInt8]
    ) throws(SealingError) -> (ciphertext: [UInt8], tag: [UInt8]) {
        try checkSizes(key: key, nonce: nonce)
        guard let context = EVP_CIPHER_CTX_new() else { throw .openSSL("\(CryptoError.openSSL("EVP_CIPHER_CTX_new"))") }
        defer { EVP_CIPHER_CTX_free(context) }
        guard EVP_EncryptInit_ex2(context, OpenSSLAlgorithms.aes256GCM.pointer, key, nonce, nil) == 1 else {
            throw .openSSL("\(CryptoError.openSSL("EVP_EncryptInit_ex2"))")
        }
        var length: Int32 = 0
        let aadOK = additionalData.withUnsafeBytes { bytes in
            withNonNullBase(bytes) { base, count in EVP_EncryptUpdate(context, nil, &length, base, Int32(count)) }
        }
        guard aadOK == 1 else { throw .openSSL("\(CryptoError.openSSL("EVP_EncryptUpdate (AAD)"))") }
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count + tagSize)
        var written = 0
        let updated = ciphertext.withUnsafeMutableBufferPointer { out in
            plaintext.withUnsafeBytes { bytes in
                withNonNullBase(bytes) { base, count in
                    EVP_EncryptUpdate(context, out.baseAddress, &length, base, Int32(count))
                }
            }
        }
        guard updated == 1 else { throw .openSSL("\(CryptoError.openSSL("EVP_EncryptUpdate"))") }
        written = Int(length)
        let finished = ciphertext.withUnsafeMutableBufferPointer { out in
            EVP_EncryptFinal_ex(context, out.baseAddress! + written, &length)
        }
        guard finished == 1 else { throw .openSSL("\(CryptoError.openSSL("EVP_EncryptFinal_ex"))") }
        written += Int(length)
        var tag = [UInt8](repeating: 0, count: tagSize)
        let tagged = tag.withUnsafeMutableBytes { out in
            EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, Int32(tagSize), out.baseAddress)
        }
        guard tagged == 1 else { throw .openSSL("\(CryptoError.openSSL("EVP_CTRL_AEAD_GET_TAG"))") }
        return (Array(ciphertext.prefix(written)), tag)
    }

    /// - Throws: ``SealingError/authenticationFailed`` when the tag does not match; nothing of
    ///   the unauthenticated plaintext is returned.
    public static func decrypt(
        key: [UInt8], nonce: [UInt8], ciphertext: [UInt8], tag: [UInt8], additionalData: [UInt8]
    ) throws(SealingError) -> [UInt8] {
        try checkSizes(key: key, nonce: nonce)
        guard tag.count == tagSize else { throw .malformed }
        guard let context = EVP_CIPHER_CTX_new() else { throw .openSSL("\(CryptoError.openSSL("EVP_CIPHER_CTX_new"))") }
        defer { EVP_CIPHER_CTX_free(context) }
        guard EVP_DecryptInit_ex2(context, OpenSSLAlgorithms.aes256GCM.pointer, key, nonce, nil) == 1 else {
            throw .openSSL("\(CryptoError.openSSL("EVP_DecryptInit_ex2"))")
        }
        var length: Int32 = 0
        let aadOK = additionalData.withUnsafeBytes { bytes in
            withNonNullBase(bytes) { base, count in EVP_DecryptUpdate(context, nil, &length, base, Int32(count)) }
        }
        guard aadOK == 1 else { throw .openSSL("\(CryptoError.openSSL("EVP_DecryptUpdate (AAD)"))") }
        var plaintext = [UInt8](repeating: 0, count: ciphertext.count + tagSize)
        let updated = plaintext.withUnsafeMutableBufferPointer { out in
            ciphertext.withUnsafeBytes { bytes in
                withNonNullBase(bytes) { base, count in
                    EVP_DecryptUpdate(context, out.baseAddress, &length, base, Int32(count))
                }
            }
        }
        guard updated == 1 else { throw .openSSL("\(CryptoError.openSSL("EVP_DecryptUpdate"))") }
        var written = Int(length)
        var expected = tag
        let tagSet = expected.withUnsafeMutableBytes { bytes in
            EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(tagSize), bytes.baseAddress)
        }
        guard tagSet == 1 else { throw .openSSL("\(CryptoError.openSSL("EVP_CTRL_AEAD_SET_TAG"))") }
        let verified = plaintext.withUnsafeMutableBufferPointer { out in
            EVP_DecryptFinal_ex(context, out.baseAddress! + written, &length)
        }
        guard verified > 0 else {
            ERR_clear_error()
            for index in plaintext.indices { plaintext[index] = 0 }
            throw .authenticationFailed
        }
        written += Int(length)
        return Array(plaintext.prefix(written))
    }

    private static func checkSizes(key: [UInt8], nonce: [UInt8]) throws(SealingError) {
        guard key.count == SealingKey.byteCount else { throw .invalidKeyLength(key.count) }
        guard nonce.count == nonceSize else { throw .invalidNonceLength(nonce.count) }
    }
}
