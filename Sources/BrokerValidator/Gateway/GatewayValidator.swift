import BrokerCrypto
import Foundation

/// A gateway's whole decision on a bearer token: the shared token rules, keys from the cached
/// JWKS, and the cluster's name as the audience.
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

    public init(keys: JWKSCache, checks: AccessTokenChecks, clock: any WallClock = SystemWallClock()) {
        self.keys = keys
        self.checks = checks
        self.clock = clock
    }

    /// - Parameters:
    ///   - token: the bearer token, nil or empty when none was presented.
    ///   - cluster: this gateway's cluster name, which `aud` must contain.
    public func validate(_ token: String?, cluster: String) async -> Result<GatewayIdentity, GatewayRefusal> {
        guard let token, !token.isEmpty else { return .failure(.missingToken) }
        let claims: AccessTokenClaims
        do {
            // Everything but the key lookup is synchronous: a garbage token never reaches the
            // cache, so it can never cause a fetch.
            let unverified = try checks.inspect(token)
            let key: PublicKey?
            if let fresh = keys.freshKey(for: unverified.keyID) {
                key = fresh
            } else {
                key = await keys.key(for: unverified.keyID)
            }
            claims = try checks.verify(unverified, key: key, audience: nil, now: clock.now())
        } catch {
            return .failure(.invalidToken(error))
        }
        // Checked apart, and last, so that only a token valid in every other way gets 403.
        do {
            try checks.checkAudience(claims, contains: cluster)
        } catch {
            return .failure(.otherCluster)
        }
        return .success(GatewayIdentity(claims: claims, cluster: cluster))
    }
}
