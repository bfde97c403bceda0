import CBrokerShims
import COpenSSL

/// A public verification key held in an OpenSSL `EVP_PKEY`, with its JWK form and RFC 7638
/// thumbprint computed once at load time.
///
/// `verify` never throws and never traps, whatever bytes it is given: a verifier faces
/// attacker-controlled input, and any failure simply means "not valid".
///
/// `@unchecked Sendable` because the `EVP_PKEY` is never modified after `init`, OpenSSL allows
/// concurrent use of one key, and every verification runs on an operation context that one
/// thread at a time borrows from `ContextPool`.
///
/// ```swift
/// let key = try PublicKey(jwk: jwksKey)
/// let jws = try CompactJWS.parse(bearer)
/// let valid = jws.verify(with: key)   // checks the header's alg matches the key, then the signature
/// ```
public final class PublicKey: @unchecked Sendable {
    /// The JWS algorithm this key verifies.
    public let algorithm: JWSAlgorithm
    /// The RFC 7638 SHA-256 thumbprint, base64url: a stable identifier suitable as a `kid`.
    public let thumbprint: String
    /// The length of a valid signature for this key (JOSE form).
    public let signatureSize: Int

    private let pkey: OpaquePointer
    private let members: Members
    private let verifiers: ContextPool

    /// The public members of the JWK, base64url-encoded.
    private struct Members {
        var crv: String?
        var x: String?
        var y: String?
        var n: String?
        var e: String?
    }

    /// Takes ownership of `pkey`: it is freed on every path, including a thrown error.
    init(owning pkey: OpaquePointer, algorithm: JWSAlgorithm) throws(CryptoError) {
        let members: Members
        do {
            try KeySupport.check(pkey, for: algorithm)
            members = try Self.extractMembers(pkey, algorithm: algorithm)
        } catch {
            EVP_PKEY_free(pkey)
            throw error
        }
        self.algorithm = algorithm
        self.pkey = pkey
        self.members = members
        self.thumbprint = Self.thumbprint(members, algorithm: algorithm)
        self.signatureSize = KeySupport.signatureSize(of: pkey, algorithm: algorithm)
        self.verifiers = KeyOperation.verify.makePool(pkey: pkey, algorithm: algorithm)
    }

    deinit {
        EVP_PKEY_free(pkey)
    }

    /// The public half of a private `EVP_PKEY`, as a separate key holding no private material.
    static func derived(fromPrivate pkey: OpaquePointer, algorithm: JWSAlgorithm) throws(CryptoError) -> PublicKey {
        var encoded: UnsafeMutablePointer<UInt8>?
        let length = i2d_PUBKEY(pkey, &encoded)
        guard length > 0, let encoded else { throw CryptoError.openSSL("cannot derive the public key") }
        defer { broker_openssl_free(encoded) }
        var cursor: UnsafePointer<UInt8>? = UnsafePointer(encoded)
        guard let publicOnly = d2i_PUBKEY(nil, &cursor, Int(length)) else {
            throw CryptoError.openSSL("cannot derive the public key")
        }
        return try PublicKey(owning: publicOnly, algorithm: algorithm)
    }

    /// Loads a PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----"), checking that it fits
    /// `algorithm` as `PrivateKey(pem:algorithm:)` does.
    public convenience init(pem: String, algorithm: JWSAlgorithm) throws {
        let loaded = KeySupport.withUTF8(pem) { text, length in
            broker_pem_read_public_key(text, length)
        }
        guard let pkey = loaded else {
            throw CryptoError.openSSL("not a PEM public key (expected \"PUBLIC KEY\")")
        }
        try self.init(owning: pkey, algorithm: algorithm)
    }

    /// Builds a key from a public JWK: RSA (`n`, `e`), EC P-256 (`x`, `y`, checked to be a
    /// point on the curve) or OKP Ed25519 (`x`). The key verifies for its `alg`, which must fit
    /// the `kty` (an OKP key may be `EdDSA` or `Ed25519`, RFC 9864); a JWK without `alg` gets
    /// the one its `kty` implies (`EdDSA` for OKP, as RFC 8037 wrote it). A `use` other than
    /// "sig" is an error. Verifiers that must not guess (`JWKSKeySet`) refuse a JWK without
    /// `alg` before they get here.
    public convenience init(jwk: JWK) throws {
        guard let family = KeyFamily(keyType: jwk.kty) else {
            throw CryptoError("unsupported JWK key type \"\(jwk.kty.prefix(16))\"")
        }
        let algorithm: JWSAlgorithm
        if let alg = jwk.alg {
            guard let named = JWSAlgorithm(rawValue: alg), named.keyFamily == family else {
                throw CryptoError("JWK of type \(jwk.kty) cannot be used with alg \"\(alg.prefix(16))\"")
            }
            algorithm = named
        } else {
            algorithm = family.impliedAlgorithm
        }
        if let use = jwk.use, use != "sig" {
            throw CryptoError("JWK is not a signature key (use \"\(use.prefix(16))\")")
        }
        let pkey = try Self.makePKey(from: jwk, family: family)
        try self.init(owning: pkey, algorithm: algorithm)
    }

    /// The key as PEM SubjectPublicKeyInfo, the form gateways such as HAProxy load.
    public func spkiPEM() throws -> String {
        try KeySupport.pem(secret: false) { bio in
            PEM_write_bio_PUBKEY(bio, pkey)
        }
    }

    /// The key as a JWK for a JWKS, with `alg`, `use: "sig"` and the given `kid`.
    public func jwk(kid: String?) -> JWK {
        JWK(
            kty: algorithm.keyType,
            crv: members.crv,
            x: members.x,
            y: members.y,
            n: members.n,
            e: members.e,
            kid: kid,
            alg: algorithm.rawValue,
            use: "sig"
        )
    }

    /// Whether `signature` is a valid JOSE-form signature of `message` by this key.
    ///
    /// An ES256 signature must be exactly 64 bytes (R||S) with S ≤ n/2, an RS256 one exactly the
    /// modulus size, an EdDSA or Ed25519 one 64 bytes; anything else is false. Together with strict
    /// base64url this gives every valid token exactly one spelling.
    public func verify(signature: [UInt8], message: UnsafeRawBufferPointer) -> Bool {
        guard signature.count == signatureSize else { return false }
        return signature.withUnsafeBytes { verify(signature: $0, message: message) }
    }

    /// Whether `signature` is a valid signature of `message`; see the raw-buffer overload.
    public func verify(signature: [UInt8], message: [UInt8]) -> Bool {
        message.withUnsafeBytes { verify(signature: signature, message: $0) }
    }

    func verify(signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) -> Bool {
        guard signature.count == signatureSize, let signatureBase = signature.baseAddress else { return false }
        let signatureBytes = signatureBase.assumingMemoryBound(to: UInt8.self)
        let valid: Bool?
        switch algorithm.keyFamily {
        case .ed25519:
            valid = verifiers.withContext { context in
                let result = withNonNullBase(message) { base, count in
                    EVP_DigestVerify(context, signatureBytes, signature.count, base, count)
                }
                // 0 is "bad signature", which leaves the context usable; < 0 is an internal error.
                return (result == 1, result >= 0)
            }
        case .rsa:
            valid = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Digest.sha256Size) { digest in
                Digest.sha256(message, into: digest.baseAddress!)
                return verifiers.withContext { context in
                    let result = EVP_PKEY_verify(context, signatureBytes, signature.count, digest.baseAddress, digest.count)
                    return (result == 1, result >= 0)
                }
            }
        case .p256:
            // (r, n − s) verifies wherever (r, s) does: only the low-S spelling is a token.
            guard ECDSASignature.hasLowS(signature) else { return false }
            valid = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Digest.sha256Size + ECDSASignature.maxDERSize) { scratch in
                let digest = scratch.baseAddress!
                let der = digest + Digest.sha256Size
                Digest.sha256(message, into: digest)
                let derLength = ECDSASignature.derFromRaw(
                    signature,
                    into: UnsafeMutableRawBufferPointer(start: der, count: ECDSASignature.maxDERSize)
                )
                return verifiers.withContext { context in
                    let result = EVP_PKEY_verify(context, der, derLength, digest, Digest.sha256Size)
                    return (result == 1, result >= 0)
                }
            }
        }
        guard valid == true else {
            // A rejected signature leaves entries on this thread's OpenSSL error queue.
            ERR_clear_error()
            return false
        }
        return true
    }

    // MARK: - JWK members and thumbprint

    private static func extractMembers(_ pkey: OpaquePointer, algorithm: JWSAlgorithm) throws(CryptoError) -> Members {
        switch algorithm.keyFamily {
        case .rsa:
            let n = try bigNumberParameter(pkey, staticCString("n"), width: nil)
            let e = try bigNumberParameter(pkey, staticCString("e"), width: nil)
            return Members(n: Base64URL.encode(n), e: Base64URL.encode(e))
        case .p256:
            let x = try bigNumberParameter(pkey, staticCString("qx"), width: ECDSASignature.scalarSize)
            let y = try bigNumberParameter(pkey, staticCString("qy"), width: ECDSASignature.scalarSize)
            return Members(crv: "P-256", x: Base64URL.encode(x), y: Base64URL.encode(y))
        case .ed25519:
            var raw = [UInt8](repeating: 0, count: 32)
            var length = raw.count
            guard EVP_PKEY_get_raw_public_key(pkey, &raw, &length) == 1, length == 32 else {
                throw CryptoError.openSSL("cannot read the Ed25519 public key")
            }
            return Members(crv: "Ed25519", x: Base64URL.encode(raw))
        }
    }

    /// Reads a BIGNUM key parameter as big-endian bytes: minimal when `width` is nil, else
    /// left-padded to `width` (EC coordinates are fixed-width in JWK).
    private static func bigNumberParameter(
        _ pkey: OpaquePointer,
        _ name: UnsafePointer<CChar>,
        width: Int?
    ) throws(CryptoError) -> [UInt8] {
        var number: OpaquePointer?
        guard EVP_PKEY_get_bn_param(pkey, name, &number) == 1, let number else {
            throw CryptoError.openSSL("cannot read a public key parameter")
        }
        defer { BN_free(number) }
        let minimal = (Int(BN_num_bits(number)) + 7) / 8
        let size = width ?? minimal
        guard minimal <= size else { throw CryptoError("public key parameter too large") }
        var bytes = [UInt8](repeating: 0, count: size)
        guard BN_bn2binpad(number, &bytes, Int32(size)) == Int32(size) else {
            throw CryptoError.openSSL("cannot read a public key parameter")
        }
        return bytes
    }

    /// RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
    /// `alg` is not among them: one Ed25519 key has one thumbprint under `EdDSA` and `Ed25519`.
    private static func thumbprint(_ members: Members, algorithm: JWSAlgorithm) -> String {
        var json = JSONWriter(capacity: 512)
        json.beginObject()
        switch algorithm.keyFamily {
        case .rsa:
            json.field("e", members.e ?? "")
            json.field("kty", "RSA")
            json.field("n", members.n ?? "")
        case .p256:
            json.field("crv", members.crv ?? "")
            json.field("kty", "EC")
            json.field("x", members.x ?? "")
            json.field("y", members.y ?? "")
        case .ed25519:
            json.field("crv", members.crv ?? "")
            json.field("kty", "OKP")
            json.field("x", members.x ?? "")
        }
        json.endObject()
        return Base64URL.encode(Digest.sha256(json.bytes))
    }

    // MARK: - Keys from JWK members

    private static func makePKey(from jwk: JWK, family: KeyFamily) throws(CryptoError) -> OpaquePointer {
        switch family {
        case .rsa:
            guard let nText = jwk.n, let eText = jwk.e else { throw CryptoError("RSA JWK lacks n or e") }
            guard var n = Base64URL.decode(nText), var e = Base64URL.decode(eText) else {
                throw CryptoError("RSA JWK n or e is not base64url")
            }
            // RFC 7518 asks for minimal encodings; tolerate extra leading zeros but not emptiness.
            n = Array(n.drop { $0 == 0 })
            e = Array(e.drop { $0 == 0 })
            guard !n.isEmpty, !e.isEmpty, e.count <= 8 else { throw CryptoError("RSA JWK has an invalid n or e") }
            return try fromData(typeName: "RSA") { builder, finish in
                guard let modulus = BN_bin2bn(n, Int32(n.count), nil) else { return nil }
                defer { BN_free(modulus) }
                guard let exponent = BN_bin2bn(e, Int32(e.count), nil) else { return nil }
                defer { BN_free(exponent) }
                guard OSSL_PARAM_BLD_push_BN(builder, staticCString("n"), modulus) == 1,
                      OSSL_PARAM_BLD_push_BN(builder, staticCString("e"), exponent) == 1
                else { return nil }
                return finish()
            }
        case .p256:
            guard jwk.crv == "P-256" else {
                throw CryptoError("EC JWK must use curve P-256, got \(jwk.crv.map { "\"\($0.prefix(16))\"" } ?? "none")")
            }
            guard let xText = jwk.x, let yText = jwk.y, let x = Base64URL.decode(xText), let y = Base64URL.decode(yText),
                  x.count == ECDSASignature.scalarSize, y.count == ECDSASignature.scalarSize
            else { throw CryptoError("EC JWK x and y must be 32-byte base64url values") }
            let point: [UInt8] = [0x04] + x + y  // SEC 1 uncompressed point
            let pkey = try fromData(typeName: "EC") { builder, finish in
                point.withUnsafeBytes { pointBytes in
                    guard OSSL_PARAM_BLD_push_utf8_string(builder, staticCString("group"), staticCString("P-256"), 0) == 1,
                          OSSL_PARAM_BLD_push_octet_string(builder, staticCString("pub"), pointBytes.baseAddress, pointBytes.count) == 1
                    else { return nil }
                    return finish()
                }
            }
            // Importing decodes the point, which already refuses points off the curve; the
            // explicit check keeps that guarantee independent of OpenSSL's import internals.
            guard let context = EVP_PKEY_CTX_new_from_pkey(nil, pkey, nil) else {
                EVP_PKEY_free(pkey)
                throw CryptoError.openSSL("cannot check the EC point")
            }
            defer { EVP_PKEY_CTX_free(context) }
            guard EVP_PKEY_public_check(context) == 1 else {
                EVP_PKEY_free(pkey)
                throw CryptoError.openSSL("EC JWK point is not on the P-256 curve")
            }
            return pkey
        case .ed25519:
            guard jwk.crv == "Ed25519" else {
                throw CryptoError("OKP JWK must use curve Ed25519, got \(jwk.crv.map { "\"\($0.prefix(16))\"" } ?? "none")")
            }
            guard let xText = jwk.x, let x = Base64URL.decode(xText), x.count == 32 else {
                throw CryptoError("Ed25519 JWK x must be a 32-byte base64url value")
            }
            guard let pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, x, x.count) else {
                throw CryptoError.openSSL("invalid Ed25519 public key")
            }
            return pkey
        }
    }

    /// Imports a public key of type `typeName` from the OSSL_PARAMs that `fill` pushes onto a
    /// builder. `fill` must end by calling the `finish` it is given, while everything it pushed
    /// is still alive: the builder keeps pointers and copies only when `finish` builds.
    private static func fromData(
        typeName: StaticString,
        _ fill: (_ builder: OpaquePointer, _ finish: () -> OpaquePointer?) -> OpaquePointer?
    ) throws(CryptoError) -> OpaquePointer {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, staticCString(typeName), nil) else {
            throw CryptoError.openSSL("cannot create a key import context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_fromdata_init(context) == 1 else { throw CryptoError.openSSL("cannot initialise key import") }
        guard let builder = OSSL_PARAM_BLD_new() else { throw CryptoError.openSSL("cannot allocate key parameters") }
        defer { OSSL_PARAM_BLD_free(builder) }
        let finish = { () -> OpaquePointer? in
            guard let parameters = OSSL_PARAM_BLD_to_param(builder) else { return nil }
            defer { OSSL_PARAM_free(parameters) }
            var pkey: OpaquePointer?
            guard EVP_PKEY_fromdata(context, &pkey, broker_evp_pkey_public_key_selection(), parameters) == 1 else { return nil }
            return pkey
        }
        guard let pkey = fill(builder, finish) else { throw CryptoError.openSSL("invalid \(typeName) public key in JWK") }
        return pkey
    }
}
