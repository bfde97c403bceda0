/// The JWS signature algorithms the broker signs and verifies with (RFC 7518, RFC 8037,
/// RFC 9864).
///
/// Only asymmetric algorithms: a token that leaves the broker must be checkable by a gateway
/// that cannot mint one. The raw value is the JOSE `alg` name.
///
/// Ed25519 has two names. RFC 8037 called it `EdDSA`, a name that does not say which curve;
/// RFC 9864 deprecates that name in favour of the fully-specified `Ed25519`. Both are here,
/// over the same keys and the same signatures, because verifiers in the field know one or the
/// other (PyJWT 2.15 knows only `EdDSA`). They are still two algorithms: a key published for
/// one never verifies a token that names the other (`CompactJWS.verify(with:)`).
///
/// ```swift
/// let key = try PrivateKey.generate(.es256)
/// JWSAlgorithm(rawValue: "RS256")   // .rs256
/// JWSAlgorithm(rawValue: "Ed25519")  // .ed25519
/// ```
public enum JWSAlgorithm: String, Sendable, CaseIterable, Codable {
    /// RSASSA-PKCS1-v1_5 with SHA-256; the default, since every JWT verifier supports it.
    case rs256 = "RS256"
    /// ECDSA on P-256 with SHA-256; signatures are the 64-byte R||S form.
    case es256 = "ES256"
    /// Ed25519 (pure EdDSA) under its RFC 8037 name, deprecated by RFC 9864 but the only one
    /// older verifiers know.
    case edDSA = "EdDSA"
    /// Ed25519 (pure EdDSA) under its fully-specified RFC 9864 name: the keys and signatures
    /// of `edDSA`, another `alg`.
    case ed25519 = "Ed25519"

    /// The kind of key this algorithm signs with.
    var keyFamily: KeyFamily {
        switch self {
        case .rs256: .rsa
        case .es256: .p256
        case .edDSA, .ed25519: .ed25519
        }
    }

    /// The JWK `kty` of keys for this algorithm.
    var keyType: String { keyFamily.keyType }
}

/// The kinds of key material behind the algorithms: what a key is, whatever `alg` names it.
/// `EdDSA` and `Ed25519` share one.
enum KeyFamily: Sendable {
    /// RSA of 2048 to 16384 bits.
    case rsa
    /// EC on P-256.
    case p256
    /// Ed25519.
    case ed25519

    /// The JWK `kty`.
    var keyType: String {
        switch self {
        case .rsa: "RSA"
        case .p256: "EC"
        case .ed25519: "OKP"
        }
    }

    /// The family of a JWK `kty`; nil for any other type.
    init?(keyType: String) {
        switch keyType {
        case "RSA": self = .rsa
        case "EC": self = .p256
        case "OKP": self = .ed25519
        default: return nil
        }
    }

    /// The algorithm a JWK of this family means when it has no `alg`: the only one RFC 7518
    /// and RFC 8037 tie to its `kty`. For OKP that is `EdDSA`, the name every such JWK written
    /// before RFC 9864 meant.
    var impliedAlgorithm: JWSAlgorithm {
        switch self {
        case .rsa: .rs256
        case .p256: .es256
        case .ed25519: .edDSA
        }
    }
}
