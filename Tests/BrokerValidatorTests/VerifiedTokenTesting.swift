import BrokerCrypto
import BrokerValidator
import Foundation

/// What the tests of the verified-token cache share: a validator on a manual clock, tokens made
/// at that clock's time, and the gateway's JWKS cache.
protocol VerifiedTokenTesting {
    var clock: ManualWallClock { get }
    var leeway: Int { get }
}

extension VerifiedTokenTesting {
    var factory: TokenFactory { TokenFactory(now: Int64(clock.now().timeIntervalSince1970)) }

    func makeValidator(keys: JWKSCache, capacity: Int = 100) -> GatewayValidator {
        GatewayValidator(
            keys: keys, checks: AccessTokenChecks(issuer: TokenFactory.issuer, leeway: leeway), clock: clock,
            verifiedTokens: VerifiedTokenCache(capacity: capacity))
    }

    /// The gateway's JWKS cache: known keys answered from the held set while it revalidates.
    func gatewayKeys(_ source: FakeJWKSSource) -> JWKSCache {
        var configuration = JWKSCacheConfiguration()
        configuration.serveStaleWhileRevalidating = true
        return JWKSCache(source: source, configuration: configuration, clock: clock)
    }
}
