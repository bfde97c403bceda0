/// A public JSON Web Key (RFC 7517) as published in a JWKS.
///
/// Only public members exist here, so a private key cannot be published by mistake. Fields that
/// are nil are left out when encoding.
///
/// ```swift
/// let jwk = key.publicKey.jwk(kid: key.publicKey.thumbprint)
/// let data = try JSONEncoder().encode(["keys": [jwk]])
/// let verifier = try PublicKey(jwk: jwk)
/// ```
public struct JWK: Sendable, Equatable, Codable {
    /// Key type: "RSA", "EC" or "OKP".
    public var kty: String
    /// Curve: "P-256" for EC, "Ed25519" for OKP.
    public var crv: String?
    /// EC x coordinate or OKP public key, base64url.
    public var x: String?
    /// EC y coordinate, base64url.
    public var y: String?
    /// RSA modulus, base64url big-endian without leading zeros.
    public var n: String?
    /// RSA public exponent, base64url big-endian.
    public var e: String?
    /// Key identifier, matched against a token header's `kid`.
    public var kid: String?
    /// The algorithm this key is used with.
    public var alg: String?
    /// Intended use; "sig" for the broker's keys.
    public var use: String?

    public init(
        kty: String,
        crv: String? = nil,
        x: String? = nil,
        y: String? = nil,
        n: String? = nil,
        e: String? = nil,
        kid: String? = nil,
        alg: String? = nil,
        use: String? = nil
    ) {
        self.kty = kty
        self.crv = crv
        self.x = x
        self.y = y
        self.n = n
        self.e = e
        self.kid = kid
        self.alg = alg
        self.use = use
    }
}
