/// The JWS signature algorithms the broker signs and verifies with (RFC 7518, RFC 8037).
///
/// Only asymmetric algorithms: a token that leaves the broker must be checkable by a gateway
/// that cannot mint one. The raw value is the JOSE `alg` name.
///
/// ```swift
/// let key = try PrivateKey.generate(.es256)
/// JWSAlgorithm(rawValue: "RS256")   // .rs256
/// ```
public enum JWSAlgorithm: String, Sendable, CaseIterable, Codable {
    /// RSASSA-PKCS1-v1_5 with SHA-256; the default, since every JWT verifier supports it.
    case rs256 = "RS256"
    /// ECDSA on P-256 with SHA-256; signatures are the 64-byte R||S form.
    case es256 = "ES256"
    /// Ed25519 (pure EdDSA, RFC 8037).
    case edDSA = "EdDSA"

    /// The JWK `kty` of keys for this algorithm.
    var keyType: String {
        switch self {
        case .rs256: "RSA"
        case .es256: "EC"
        case .edDSA: "OKP"
        }
    }
}
