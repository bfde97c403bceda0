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
        return decision(claims, cluster: cluster)
    }

    /// The decision `validate(_:cluster:)` would give, when it can be given without waiting:
    /// for no token, and for a token in the cache whose key is published, unchanged, in the
    /// fresh key set (`JWKSCache.freshKey(for:)`) and whose `exp`, `nbf` and `iat` pass at the
    /// clock's time. A hit counts as one, as in `validate(_:cluster:)`.
    ///
    /// Nil when the decision needs more: a token not in the cache (its signature must be
    /// checked), a key set that is stale or lacks the key (a lookup that may fetch), an entry
    /// that no longer holds. Nothing is counted or dropped then: `validate(_:cluster:)` decides
    /// with the same rules, and counts and drops as it always has. So an HTTP server can answer
    /// a hit on its event loop, where it must not wait, and hand the rest to a task.
    ///
    /// ```swift
    /// let result = validator.validateIfCached(bearer, cluster: "cluster1") ?? await validator.validate(bearer, cluster: "cluster1")
    /// ```
    public func validateIfCached(_ token: String?, cluster: String) -> Result<GatewayIdentity, GatewayRefusal>? {
        guard let token, !token.isEmpty else { return .failure(.missingToken) }
        guard verifiedTokens.isEnabled else { return nil }
        let now = clock.now()
        let entry = verifiedTokens.entry(for: TokenDigest(token)) { entry in
            // The conditions of `cachedClaims`, without its wait for a key set that is not fresh.
            guard let key = keys.freshKey(for: entry.keyID), entry.wasVerified(by: key) else { return false }
            do {
                try checks.checkTimes(entry.claims, now: now)
                return true
            } catch {
                return false
            }
        }
        guard let entry else { return nil }
        return decision(entry.claims, cluster: cluster)
    }

    /// The answer for claims that passed every check but the audience. The audience is
    /// checked apart, and last, so that only a token valid in every other way gets 403; on a
    /// cache hit too, as the cache holds tokens of any audience.
    private func decision(_ claims: AccessTokenClaims, cluster: String) -> Result<GatewayIdentity, GatewayRefusal> {
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
