import CBrokerShims
import COpenSSL

/// A private signing key held in an OpenSSL `EVP_PKEY`.
///
/// Loading checks that the key fits its algorithm (RSA of at least 2048 bits for RS256, P-256
/// for ES256, Ed25519 for EdDSA and Ed25519) and that it signs something its public half verifies, so a
/// wrong or corrupted key fails at startup rather than on the first token.
///
/// `@unchecked Sendable` because the `EVP_PKEY` is never modified after `init`, OpenSSL allows
/// concurrent use of one key, and every operation runs on an operation context that one thread
/// at a time borrows from `ContextPool`.
///
/// ```swift
/// let key = try PrivateKey(pem: String(contentsOfFile: "keys/active.pem"), algorithm: .rs256)
/// let signature = try key.sign(Array("header.payload".utf8))
/// assert(key.publicKey.verify(signature: signature, message: Array("header.payload".utf8)))
/// ```
public final class PrivateKey: @unchecked Sendable {
    /// The JWS algorithm this key signs with.
    public let algorithm: JWSAlgorithm
    /// The public half, derived once at load time.
    public let publicKey: PublicKey
    /// The length of every signature this key produces (JOSE form).
    public let signatureSize: Int

    private let pkey: OpaquePointer
    private let signers: ContextPool

    /// Takes ownership of `pkey`: it is freed on every path, including a thrown error.
    init(owning pkey: OpaquePointer, algorithm: JWSAlgorithm) throws(CryptoError) {
        let publicKey: PublicKey
        do {
            try KeySupport.check(pkey, for: algorithm)
            publicKey = try PublicKey.derived(fromPrivate: pkey, algorithm: algorithm)
        } catch {
            EVP_PKEY_free(pkey)
            throw error
        }
        self.algorithm = algorithm
        self.publicKey = publicKey
        self.signatureSize = KeySupport.signatureSize(of: pkey, algorithm: algorithm)
        self.pkey = pkey
        self.signers = KeyOperation.sign.makePool(pkey: pkey, algorithm: algorithm)
        // From here on `deinit` frees the key.
        try selfTest()
    }

    deinit {
        EVP_PKEY_free(pkey)
    }

    /// Generates a fresh key: RSA 2048 bits with e = 65537, P-256, or Ed25519.
    public static func generate(_ algorithm: JWSAlgorithm) throws -> PrivateKey {
        let name: StaticString = switch algorithm.keyFamily {
        case .rsa: "RSA"
        case .p256: "EC"
        case .ed25519: "ED25519"
        }
        guard let context = EVP_PKEY_CTX_new_from_name(nil, staticCString(name), nil) else {
            throw CryptoError.openSSL("cannot create a key generation context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1 else {
            throw CryptoError.openSSL("cannot initialise key generation")
        }
        switch algorithm.keyFamily {
        case .rsa:
            // The public exponent defaults to 65537.
            guard EVP_PKEY_CTX_set_rsa_keygen_bits(context, 2048) == 1 else {
                throw CryptoError.openSSL("cannot set the RSA key size")
            }
        case .p256:
            guard EVP_PKEY_CTX_set_group_name(context, staticCString("P-256")) == 1 else {
                throw CryptoError.openSSL("cannot select the P-256 curve")
            }
        case .ed25519:
            break
        }
        var pkey: OpaquePointer?
        guard EVP_PKEY_generate(context, &pkey) == 1, let pkey else {
            throw CryptoError.openSSL("key generation failed")
        }
        return try PrivateKey(owning: pkey, algorithm: algorithm)
    }

    /// Loads a PEM private key: PKCS#8 ("PRIVATE KEY") or the traditional "RSA PRIVATE KEY" and
    /// "EC PRIVATE KEY" forms. Encrypted keys are refused rather than prompting for a passphrase.
    public convenience init(pem: String, algorithm: JWSAlgorithm) throws {
        let loaded = KeySupport.withUTF8(pem) { text, length in
            broker_pem_read_private_key(text, length)
        }
        guard let pkey = loaded else {
            throw CryptoError.openSSL("not a PEM private key (expected PKCS#8 \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\", unencrypted)")
        }
        try self.init(owning: pkey, algorithm: algorithm)
    }

    /// The key as unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----").
    public func pkcs8PEM() throws -> String {
        try KeySupport.pem(secret: true) { bio in
            PEM_write_bio_PrivateKey(bio, pkey, nil, nil, 0, nil, nil)
        }
    }

    /// Signs `message` and returns the JOSE-form signature: PKCS#1 v1.5 with SHA-256 for RS256,
    /// the 64-byte R||S of ECDSA P-256 with SHA-256 and S ≤ n/2 for ES256, pure Ed25519 for
    /// EdDSA and Ed25519 (the same signature under either name).
    public func sign(_ message: UnsafeRawBufferPointer) throws -> [UInt8] {
        var failure: CryptoError?
        let signature = [UInt8](unsafeUninitializedCapacity: signatureSize) { buffer, count in
            do throws(CryptoError) {
                count = try sign(message, into: UnsafeMutableRawBufferPointer(buffer))
            } catch {
                failure = error
                count = 0
            }
        }
        if let failure { throw failure }
        return signature
    }

    /// Signs `message`; see `sign(_:)` on a raw buffer.
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        try message.withUnsafeBytes { try sign($0) }
    }

    /// Signs `message` into `output` (at least `signatureSize` bytes) without allocating;
    /// returns the signature length.
    func sign(_ message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(CryptoError) -> Int {
        precondition(output.count >= signatureSize, "signature buffer too small")
        let outputBase = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let ok: Bool?
        switch algorithm.keyFamily {
        case .ed25519:
            ok = signers.withContext { context in
                var length = signatureSize
                let signed = withNonNullBase(message) { base, count in
                    EVP_DigestSign(context, outputBase, &length, base, count) == 1
                }
                return (signed && length == signatureSize, signed)
            }
        case .rsa:
            ok = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Digest.sha256Size) { digest in
                Digest.sha256(message, into: digest.baseAddress!)
                return signers.withContext { context in
                    var length = output.count
                    let signed = EVP_PKEY_sign(context, outputBase, &length, digest.baseAddress, digest.count) == 1
                    return (signed && length == signatureSize, signed)
                }
            }
        case .p256:
            ok = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Digest.sha256Size + ECDSASignature.maxDERSize) { scratch in
                let digest = scratch.baseAddress!
                let der = digest + Digest.sha256Size
                Digest.sha256(message, into: digest)
                return signers.withContext { context in
                    var length = ECDSASignature.maxDERSize
                    let signed = EVP_PKEY_sign(context, der, &length, digest, Digest.sha256Size) == 1
                    let raw = UnsafeMutableRawBufferPointer(start: outputBase, count: signatureSize)
                    let converted = signed && ECDSASignature.rawFromDER(
                        UnsafeRawBufferPointer(start: der, count: length), into: raw)
                    // OpenSSL picks either S; verifiers accept only the low one.
                    if converted { ECDSASignature.normalizeToLowS(raw) }
                    return (converted, signed)
                }
            }
        }
        guard ok == true else { throw CryptoError.openSSL("\(algorithm.rawValue) signing failed") }
        return signatureSize
    }

    /// Signs a fixed message and verifies it with the derived public key.
    private func selfTest() throws(CryptoError) {
        let message: [UInt8] = Array("broker key self-test".utf8)
        let signature: [UInt8]
        do {
            signature = try sign(message)
        } catch {
            throw CryptoError("the \(algorithm.rawValue) key cannot sign: \(error)")
        }
        guard publicKey.verify(signature: signature, message: message) else {
            throw CryptoError("the \(algorithm.rawValue) private key does not match its public key")
        }
    }
}
