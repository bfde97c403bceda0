import BrokerCrypto
import Foundation

/// The rules an access token must pass, shared by the broker (against its own key ring) and by
/// gateways (against a cached JWKS), so that both accept exactly the same tokens.
///
/// In order: structure; header (`alg` supported, no parameter that lets a token pick or fetch
/// its own key, `typ` `at+jwt`, a `kid`); the key's declared algorithm equal to `alg`; the
/// signature; then the claims (`iss`, `token_type`, every claim the broker issues, `exp`, `nbf`,
/// `iat` within the leeway, and last `aud`). The order is part of the contract: a gateway tells
/// "another cluster's valid token" (403) from "invalid" (401) by the audience being the only
/// failed rule.
///
/// ```swift
/// let checks = AccessTokenChecks(issuer: "https://login.example.org", leeway: 30)
/// let claims = try checks.verify(bearer, audience: "cluster1", now: Date()) { kid in keys[kid] }
/// ```
public struct AccessTokenChecks: Sendable {
    /// The largest clock-skew allowance accepted: more would keep expired tokens alive for
    /// longer than operators expect from "expired".
    public static let maximumLeeway = 300

    /// Header parameters that would let a token choose its own key (`jwk`, `jku`, `x5u`, `x5c`),
    /// name a certificate we never check (`x5t`, `x5t#S256`), or change how the signature is
    /// computed (`crit`, `b64`). Key URLs are never followed: the token is refused instead.
    public static let forbiddenHeaders = ["jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"]

    /// The `iss` every token must carry.
    public let issuer: String
    /// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`, within `0...maximumLeeway`.
    public let leeway: Int64

    /// - Parameter leeway: clamped to `0...maximumLeeway`.
    public init(issuer: String, leeway: Int) {
        self.issuer = issuer
        self.leeway = Int64(min(max(leeway, 0), Self.maximumLeeway))
    }

    /// Every check, with a synchronous key lookup by `kid`.
    ///
    /// - Parameters:
    ///   - audience: when given, `aud` must contain exactly this value (a `*` is never honoured).
    ///   - key: the key published under a `kid`; its `algorithm` is the one it declares.
    public func verify(
        _ token: some StringProtocol, audience: String?, now: Date, key: (String) -> PublicKey?
    ) throws(TokenRejection) -> AccessTokenClaims {
        let unverified = try inspect(token)
        return try verify(unverified, key: key(unverified.keyID), audience: audience, now: now)
    }

    /// Structure and header only, before any key is looked up.
    public func inspect(_ token: some StringProtocol) throws(TokenRejection) -> UnverifiedAccessToken {
        let jws: CompactJWS
        do {
            jws = try CompactJWS.parse(token)
        } catch {
            throw .malformed("\(error)")
        }
        guard case .string(let alg)? = jws.header["alg"] else { throw .malformed("alg header missing") }
        // Quoted back in the rejection, so cut short: the header is attacker-controlled.
        guard let algorithm = JWSAlgorithm(rawValue: alg) else { throw .disallowedAlgorithm(String(alg.prefix(20))) }
        for name in Self.forbiddenHeaders where jws.header[name] != nil {
            throw .disallowedHeader(name)
        }
        guard case .string(let type)? = jws.header["typ"],
            type.lowercased() == "at+jwt" || type.lowercased() == "application/at+jwt"
        else { throw .wrongType }
        guard case .string(let kid)? = jws.header["kid"] else { throw .unknownKey }
        return UnverifiedAccessToken(jws: jws, algorithm: algorithm, keyID: kid)
    }

    /// The key, the signature and the claims of a token that passed `inspect(_:)`.
    ///
    /// - Parameter key: the key published under the token's `kid`, or nil if there is none.
    public func verify(
        _ token: UnverifiedAccessToken, key: PublicKey?, audience: String?, now: Date
    ) throws(TokenRejection) -> AccessTokenClaims {
        guard let key else { throw .unknownKey }
        // The key decides the algorithm, never the token: this is what defeats HS256-with-the-
        // public-key and ES/RS confusion.
        guard key.algorithm == token.algorithm else { throw .algorithmMismatch }
        guard token.jws.verify(with: key) else { throw .badSignature }
        let claims = try checkClaims(token.jws.payload, now: now)
        if let audience { try checkAudience(claims, contains: audience) }
        return claims
    }

    /// The claims of a payload whose signature has been verified; `aud` is left to
    /// `checkAudience(_:contains:)`.
    public func checkClaims(_ payload: [UInt8], now: Date) throws(TokenRejection) -> AccessTokenClaims {
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(payload)
        } catch {
            throw .malformed("payload is not JSON")
        }
        guard case .object(let json) = parsed else { throw .malformed("payload is not a JSON object") }
        // `iss` and `token_type` first, so that a refresh token or another issuer's token is
        // reported as such rather than as a missing broker-specific claim.
        guard case .string(let tokenIssuer)? = json["iss"] else { throw .missingClaim("iss") }
        guard tokenIssuer == issuer else { throw .wrongIssuer }
        guard case .string(let tokenType)? = json["token_type"] else { throw .missingClaim("token_type") }
        guard tokenType == "access" else { throw .wrongTokenType }
        let claims = try AccessTokenClaims(json: json)
        try checkTimes(claims, now: now)
        return claims
    }

    /// `exp`, `nbf` and `iat` against `now`, within the leeway: the only rules whose verdict on
    /// a verified token changes with time, so a cache of verified tokens applies them again.
    public func checkTimes(_ claims: AccessTokenClaims, now: Date) throws(TokenRejection) {
        let seconds = Int64(now.timeIntervalSince1970.rounded(.down))
        // The leeway goes on the side of the clock, never of a claim: `exp` near Int64.max plus
        // the leeway would overflow and trap (found by Fuzzing/FuzzJWS).
        guard seconds - leeway < claims.expiresAt else { throw .expired }
        guard claims.notBefore <= seconds + leeway else { throw .notYetValid }
        guard claims.issuedAt <= seconds + leeway else { throw .issuedInFuture }
    }

    /// `aud` must name `audience` exactly. A `*` in the token is never honoured, and asking
    /// for `*` matches nothing: a wildcard would open every cluster to the owner of any one.
    public func checkAudience(_ claims: AccessTokenClaims, contains audience: String) throws(TokenRejection) {
        guard audience != "*", claims.audience.contains(audience) else { throw .wrongAudience }
    }
}
