import BrokerCrypto
import Foundation

/// Verifies access tokens against the local key ring: structure, header, signature, then every
/// claim. Header parameters that would let a token choose its own key (`jwk`, `jku`, `x5u`,
/// `x5c`) or demand unknown processing (`crit`) are refused outright.
///
/// ```swift
/// let claims = try verifier.verify(token, audience: "cluster1")
/// ```
public struct TokenVerifier: Sendable {
    public let keyRing: KeyRing
    public let issuer: String
    public let leeway: Int64
    public let clock: any WallClock

    static let forbiddenHeaders = ["jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"]

    public init(keyRing: KeyRing, issuer: String, leeway: Int, clock: any WallClock) {
        self.keyRing = keyRing
        self.issuer = issuer
        self.leeway = Int64(leeway)
        self.clock = clock
    }

    /// - Parameter audience: when given, `aud` must contain exactly this value (a `*` in the
    ///   token is never honoured).
    public func verify(_ token: String, audience: String? = nil) throws(TokenRejection) -> AccessTokenClaims {
        let jws: CompactJWS
        do {
            jws = try CompactJWS.parse(token)
        } catch {
            throw .malformed("\(error)")
        }
        guard case .string(let alg)? = jws.header["alg"] else { throw .malformed("alg header missing") }
        guard let algorithm = JWSAlgorithm(rawValue: alg) else { throw .disallowedAlgorithm(String(alg.prefix(20))) }
        for name in Self.forbiddenHeaders where jws.header[name] != nil {
            throw .disallowedHeader(name)
        }
        guard case .string(let type)? = jws.header["typ"],
            type.lowercased() == "at+jwt" || type.lowercased() == "application/at+jwt"
        else { throw .wrongType }
        guard case .string(let kid)? = jws.header["kid"] else { throw .unknownKey }
        guard let key = keyRing.snapshot.verificationKey(kid: kid) else { throw .unknownKey }
        guard key.algorithm == algorithm else { throw .algorithmMismatch }
        guard jws.verify(with: key) else { throw .badSignature }

        let payload: JSONValue
        do {
            payload = try JSONParser.parse(jws.payload)
        } catch {
            throw .malformed("payload is not JSON")
        }
        guard case .object(let json) = payload else { throw .malformed("payload is not a JSON object") }
        guard case .string(let tokenIssuer)? = json["iss"] else { throw .missingClaim("iss") }
        guard tokenIssuer == issuer else { throw .wrongIssuer }
        guard case .string(let tokenType)? = json["token_type"] else { throw .missingClaim("token_type") }
        guard tokenType == "access" else { throw .wrongTokenType }
        let claims = try AccessTokenClaims(json: json)
        let now = Int64(clock.now().timeIntervalSince1970.rounded(.down))
        guard now < claims.expiresAt + leeway else { throw .expired }
        guard claims.notBefore <= now + leeway else { throw .notYetValid }
        guard claims.issuedAt <= now + leeway else { throw .issuedInFuture }
        if let audience {
            guard audience != "*", claims.audience.contains(audience) else { throw .wrongAudience }
        }
        return claims
    }
}
