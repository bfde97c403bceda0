import BrokerCrypto
import Foundation

/// A gateway's whole decision on a bearer token: the shared token rules, keys from the cached
/// JWKS, and the cluster's name as the audience. A token is verified once: its claims are then
/// taken from a `VerifiedTokenCache`, with the same answer a full check would give.
///
/// ```swift
/// let validator = GatewayValidator(
///     keys: JWKSCache(source: source),
///     checks: AccessTokenChecks(issuer: "https://login.example.org", leeway: 30))
/// switch await validator.validate(bearer, cluster: "cluster1") {
/// case .success(let identity): print(identity.account, identity.roles)
/// case .failure(let refusal): print(refusal.httpStatus, refusal)
/// }
/// ```
public struct GatewayValidator: Sendable {
    public let keys: JWKSCache
    public let checks: AccessTokenChecks
    public let clock: any WallClock
    /// Tokens already verified: their signature is not checked again while their key stays
    /// published under their `kid` and they have not expired.
    public let verifiedTokens: VerifiedTokenCache

    public init(
        keys: JWKSCache, checks: AccessTokenChecks, clock: any WallClock = SystemWallClock(),
        verifiedTokens: VerifiedTokenCache = VerifiedTokenCache(capacity: VerifiedTokenCache.defaultCapacity)
    ) {
        self.keys = keys
        self.checks = checks
        self.clock = clock
        self.verifiedTokens = verifiedTokens
    }

    /// - Parameters:
    ///   - token: the bearer token, nil or empty when none was presented.
    ///   - cluster: this gateway's cluster name, which `aud` must contain.
    public func validate(_ token: String?, cluster: String) async -> Result<GatewayIdentity, GatewayRefusal> {
        guard let token, !token.isEmpty else { return .failure(.missingToken) }
        let digest = verifiedTokens.isEnabled ? TokenDigest(token) : nil
        let claims: AccessTokenClaims
        if let digest, let cached = await cachedClaims(digest) {
            claims = cached
        } else {
            do {
                claims = try await verify(token, caching: digest)
            } catch {
                return .failure(.invalidToken(error))
            }
        }
        // Checked apart, and last, so that only a token valid in every other way gets 403. On a
        // cache hit too: the cache holds tokens of any audience.
        do {
            try checks.checkAudience(claims, contains: cluster)
        } catch {
            return .failure(.otherCluster)
        }
        return .success(GatewayIdentity(claims: claims, cluster: cluster))
    }

    /// Every check but the audience; the claims of a token that passes go into the cache.
    private func verify(_ token: String, caching digest: TokenDigest?) async throws(TokenRejection) -> AccessTokenClaims {
        // Everything but the key lookup is synchronous: a garbage token never reaches the
        // JWKS cache, so it can never cause a fetch.
        let unverified = try checks.inspect(token)
        let key = await publishedKey(for: unverified.keyID)
        let claims = try checks.verify(unverified, key: key, audience: nil, now: clock.now())
        if let digest, let key {
            verifiedTokens.insert(.init(claims: claims, keyID: unverified.keyID, key: key), for: digest)
        }
        return claims
    }

    /// The cached claims of the token with this digest, if a full check would pass them now: the
    /// key published under its `kid`, looked up as for any token, is the key that verified it
    /// (so a key withdrawn from the JWKS stops its cached tokens when it stops the others), and
    /// `exp`, `nbf` and `iat` pass at the clock's time. Otherwise the entry is dropped and the
    /// token takes the full path, which gives the refusal's reason.
    private func cachedClaims(_ digest: TokenDigest) async -> AccessTokenClaims? {
        guard let entry = verifiedTokens.entry(for: digest) else { return nil }
        guard let key = await publishedKey(for: entry.keyID), entry.wasVerified(by: key) else {
            verifiedTokens.remove(digest)
            return nil
        }
        do {
            try checks.checkTimes(entry.claims, now: clock.now())
        } catch {
            verifiedTokens.remove(digest)
            return nil
        }
        return entry.claims
    }

    private func publishedKey(for kid: String) async -> PublicKey? {
        if let fresh = keys.freshKey(for: kid) { return fresh }
        return await keys.key(for: kid)
    }
}
