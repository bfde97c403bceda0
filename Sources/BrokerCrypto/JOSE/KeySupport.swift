import CBrokerShims
import COpenSSL

/// Checks and plumbing shared by `PrivateKey` and `PublicKey`.
enum KeySupport {
    /// RSA moduli below this are refused: 2048 bits is the floor of RFC 7518 section 3.3.
    static let minimumRSABits: Int32 = 2048
    /// RSA moduli above this are refused: OpenSSL's own ceiling, and a verifier fed a huge
    /// modulus from a JWKS would spend milliseconds per token.
    static let maximumRSABits: Int32 = 16384

    /// A readable name for the kind of key OpenSSL loaded, for error messages.
    static func typeName(of pkey: OpaquePointer) -> String {
        switch EVP_PKEY_get_base_id(pkey) {
        case EVP_PKEY_RSA: "an RSA key"
        case EVP_PKEY_RSA_PSS: "an RSA-PSS key"
        case EVP_PKEY_EC: "an EC key"
        case EVP_PKEY_ED25519: "an Ed25519 key"
        case EVP_PKEY_ED448: "an Ed448 key"
        case EVP_PKEY_X25519, EVP_PKEY_X448: "a key-agreement (X25519/X448) key"
        case EVP_PKEY_DSA: "a DSA key"
        default: "a key of an unsupported type"
        }
    }

    /// Throws unless `pkey` is a key `algorithm` may use: RSA (not RSA-PSS) of 2048 to 16384
    /// bits for RS256, P-256 for ES256, Ed25519 for EdDSA and Ed25519.
    static func check(_ pkey: OpaquePointer, for algorithm: JWSAlgorithm) throws(CryptoError) {
        let type = EVP_PKEY_get_base_id(pkey)
        switch algorithm.keyFamily {
        case .rsa:
            guard type == EVP_PKEY_RSA else {
                throw CryptoError("RS256 needs an RSA key, got \(typeName(of: pkey))")
            }
            let bits = EVP_PKEY_get_bits(pkey)
            guard bits >= minimumRSABits else {
                throw CryptoError("RS256 needs an RSA key of at least \(minimumRSABits) bits, got \(bits) bits")
            }
            guard bits <= maximumRSABits else {
                throw CryptoError("RSA keys above \(maximumRSABits) bits are not accepted, got \(bits) bits")
            }
            // An even or unit exponent makes "verification" trivially forgeable (e = 1 leaves
            // the signature unchanged), so such keys are refused whatever their source.
            var exponent: OpaquePointer?
            guard EVP_PKEY_get_bn_param(pkey, staticCString("e"), &exponent) == 1, let exponent else {
                ERR_clear_error()
                throw CryptoError("cannot read the RSA public exponent")
            }
            defer { BN_free(exponent) }
            guard BN_is_odd(exponent) == 1, BN_is_one(exponent) == 0 else {
                throw CryptoError("RSA public exponent must be odd and greater than 1")
            }
        case .p256:
            guard type == EVP_PKEY_EC else {
                throw CryptoError("ES256 needs an EC P-256 key, got \(typeName(of: pkey))")
            }
            let curve = groupName(of: pkey)
            guard curve == "prime256v1" || curve == "P-256" || curve == "secp256r1" else {
                throw CryptoError("ES256 needs the P-256 curve, got \(curve.map { "curve \($0)" } ?? "explicit curve parameters")")
            }
        case .ed25519:
            guard type == EVP_PKEY_ED25519 else {
                throw CryptoError("\(algorithm.rawValue) needs an Ed25519 key, got \(typeName(of: pkey))")
            }
        }
    }

    /// The named curve of an EC key; nil for keys with explicit parameters.
    static func groupName(of pkey: OpaquePointer) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        var length = 0
        guard EVP_PKEY_get_group_name(pkey, &buffer, buffer.count, &length) == 1 else {
            ERR_clear_error()
            return nil
        }
        return buffer.withUnsafeBufferPointer { pointer in
            String(decoding: UnsafeRawBufferPointer(pointer).prefix(length), as: UTF8.self)
        }
    }

    /// The size in bytes of a JOSE signature made with `pkey`.
    static func signatureSize(of pkey: OpaquePointer, algorithm: JWSAlgorithm) -> Int {
        switch algorithm.keyFamily {
        case .rsa: Int(EVP_PKEY_get_size(pkey))
        case .p256: 2 * ECDSASignature.scalarSize
        case .ed25519: 64
        }
    }

    /// Writes a PEM encoding produced by `write` to a string.
    ///
    /// - Parameter secret: use OpenSSL's secure-memory BIO, whose buffer is wiped when freed,
    ///   for private keys.
    static func pem(secret: Bool, _ write: (OpaquePointer) -> Int32) throws(CryptoError) -> String {
        guard let bio = BIO_new(secret ? BIO_s_secmem() : BIO_s_mem()) else {
            throw CryptoError.openSSL("cannot allocate a memory BIO")
        }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { throw CryptoError.openSSL("cannot write the key as PEM") }
        var data: UnsafePointer<CChar>?
        let length = broker_bio_get_mem_data(bio, &data)
        guard let data, length > 0 else { throw CryptoError("cannot write the key as PEM (empty output)") }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
    }

    /// Runs `body` with the UTF-8 bytes of `text` as a C buffer.
    static func withUTF8<Result>(_ text: String, _ body: (UnsafePointer<CChar>, Int) -> Result) -> Result {
        var text = text
        return text.withUTF8 { utf8 in
            withNonNullBase(UnsafeRawBufferPointer(utf8)) { base, count in
                body(UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self), count)
            }
        }
    }
}

/// Prepared per-operation OpenSSL contexts for one key, and the sign and verify calls on them.
///
/// RS256 and ES256 hash the message once with the pre-fetched SHA-256 and run `EVP_PKEY_sign`
/// or `EVP_PKEY_verify` on a reusable `EVP_PKEY_CTX`: this is what `openssl speed` measures,
/// and it avoids `EVP_DigestSignInit`'s per-call provider setup. Ed25519 signs the message
/// itself (no pre-hash), with a reusable `EVP_MD_CTX` set up once for one-shot
/// `EVP_DigestSign`/`EVP_DigestVerify`.
enum KeyOperation {
    case sign
    case verify

    func makePool(pkey: OpaquePointer, algorithm: JWSAlgorithm) -> ContextPool {
        let operation = self
        switch algorithm.keyFamily {
        case .ed25519:
            return ContextPool(
                factory: { operation.makeDigestContext(pkey: pkey) },
                destroy: { EVP_MD_CTX_free($0) }
            )
        case .rsa, .p256:
            return ContextPool(
                factory: { operation.makeKeyContext(pkey: pkey, algorithm: algorithm) },
                destroy: { EVP_PKEY_CTX_free($0) }
            )
        }
    }

    private func makeDigestContext(pkey: OpaquePointer) -> OpaquePointer? {
        guard let context = EVP_MD_CTX_new() else { return nil }
        let ok = switch self {
        case .sign: EVP_DigestSignInit_ex(context, nil, nil, nil, nil, pkey, nil)
        case .verify: EVP_DigestVerifyInit_ex(context, nil, nil, nil, nil, pkey, nil)
        }
        guard ok == 1 else {
            ERR_clear_error()
            EVP_MD_CTX_free(context)
            return nil
        }
        return context
    }

    private func makeKeyContext(pkey: OpaquePointer, algorithm: JWSAlgorithm) -> OpaquePointer? {
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, pkey, nil) else { return nil }
        var ok = switch self {
        case .sign: EVP_PKEY_sign_init(context) == 1
        case .verify: EVP_PKEY_verify_init(context) == 1
        }
        if ok && algorithm.keyFamily == .rsa {
            ok = EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PADDING) == 1
        }
        if ok {
            ok = EVP_PKEY_CTX_set_signature_md(context, OpenSSLAlgorithms.sha256.pointer) == 1
        }
        guard ok else {
            ERR_clear_error()
            EVP_PKEY_CTX_free(context)
            return nil
        }
        return context
    }
}
