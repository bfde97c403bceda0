import BrokerCrypto

/// A token whose structure and header have passed `AccessTokenChecks.inspect(_:)`, but whose
/// signature and claims have not been checked yet: nothing in it may be trusted except that
/// `keyID` is a plain string to look up and `algorithm` is one the broker supports.
///
/// It exists so that the key lookup can happen in between, which for a gateway may be `async`
/// (a JWKS refetch on an unknown `kid`).
///
/// ```swift
/// let unverified = try checks.inspect(bearer)
/// let key = await cache.key(for: unverified.keyID)
/// let claims = try checks.verify(unverified, key: key, audience: nil, now: clock.now())
/// ```
public struct UnverifiedAccessToken: Sendable {
    /// The parsed compact JWS.
    public let jws: CompactJWS
    /// The header's `alg`, already known to be supported.
    public let algorithm: JWSAlgorithm
    /// The header's `kid`: an opaque lookup key, never a path or a URL.
    public let keyID: String
}
