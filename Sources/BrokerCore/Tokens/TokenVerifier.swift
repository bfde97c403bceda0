import BrokerCrypto
import BrokerValidator
import Foundation

/// Verifies access tokens against the local key ring with the rules gateways use
/// (`AccessTokenChecks`): structure, header, signature, then every claim. Header parameters
/// that would let a token choose its own key (`jwk`, `jku`, `x5u`, `x5c`) or demand unknown
/// processing (`crit`) are refused outright.
///
/// ```swift
/// let claims = try verifier.verify(token, audience: "cluster1")
/// ```
public struct TokenVerifier: Sendable {
    public let keyRing: KeyRing
    public let issuer: String
    public let leeway: Int64
    public let clock: any WallClock
    private let checks: AccessTokenChecks

    /// - Parameter leeway: seconds of clock skew, at most `AccessTokenChecks.maximumLeeway`.
    public init(keyRing: KeyRing, issuer: String, leeway: Int, clock: any WallClock) {
        self.keyRing = keyRing
        self.issuer = issuer
        self.clock = clock
        checks = AccessTokenChecks(issuer: issuer, leeway: leeway)
        self.leeway = checks.leeway
    }

    /// - Parameters:
    ///   - audience: when given, `aud` must contain exactly this value (a `*` in the token is
    ///     never honoured).
    ///   - allowSessionTokens: without an `audience`, whether a broker session token (`aud` =
    ///     the issuer) is acceptable; routes that expect a cluster token refuse it.
    public func verify(
        _ token: String, audience: String? = nil, allowSessionTokens: Bool = false
    ) throws(TokenRejection) -> AccessTokenClaims {
        // One snapshot for the whole check, so that a concurrent rotation cannot mix two rings.
        let snapshot = keyRing.snapshot
        let claims = try checks.verify(token, audience: audience, now: clock.now()) { snapshot.verificationKey(kid: $0) }
        if audience == nil, !allowSessionTokens, claims.audience.contains(issuer) {
            throw .wrongAudience
        }
        return claims
    }
}
