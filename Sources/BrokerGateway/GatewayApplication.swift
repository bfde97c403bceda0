import BrokerConnections
import BrokerValidator
import Logging
import NIOCore

/// The `broker gateway` HTTP server: `ForwardAuthResponder` on every path, with a JWKS cache
/// whose fetches and failures are logged.
///
/// ```swift
/// let source = HTTPJWKSSource(url: "http://127.0.0.1:8080/.well-known/jwks.json")
/// let validator = GatewayApplication.validator(
///     source: source, issuer: "http://127.0.0.1:8080", leeway: 30, cache: JWKSCacheConfiguration(), logger: logger)
/// let server = GatewayApplication.make(validator: validator, cluster: "cluster1", host: "127.0.0.1", port: 9000, logger: logger)
/// try await ServiceGroup(configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm], logger: logger)).run()
/// try await source.shutdown()
/// ```
public enum GatewayApplication {
    /// A validator whose key cache reads `source` and logs what it does.
    ///
    /// - Parameter tokenCacheSize: how many verified tokens it remembers; 0 verifies every
    ///   token's signature on every request.
    public static func validator(
        source: any JWKSSource, issuer: String, leeway: Int, cache: JWKSCacheConfiguration, logger: Logger,
        clock: any WallClock = SystemWallClock(), tokenCacheSize: Int = VerifiedTokenCache.defaultCapacity
    ) -> GatewayValidator {
        let keys = JWKSCache(source: source, configuration: cache, clock: clock) { event in
            switch event {
            case .updated(let kids, let skipped):
                // The kids come from the JWKS answer: escaped (LogText), like the skipped entries'
                // and the failures' descriptions are where they are made.
                logger.info("JWKS loaded", metadata: ["kids": "\(kids.map { LogText.escaped($0, limit: 64) }.joined(separator: ","))"])
                for entry in skipped { logger.warning("JWKS entry skipped", metadata: ["entry": "\(entry)"]) }
            case .notModified:
                logger.debug("JWKS not modified")
            case .failed(let reason, let serving):
                logger.warning("JWKS fetch failed; serving the last good keys, if any",
                               metadata: ["reason": "\(reason)", "keys": "\(serving)"])
            }
        }
        return GatewayValidator(
            keys: keys, checks: AccessTokenChecks(issuer: issuer, leeway: leeway), clock: clock,
            verifiedTokens: VerifiedTokenCache(capacity: tokenCacheSize))
    }

    /// - Parameters:
    ///   - connections: timeouts and caps of the listener's connections.
    ///   - onServerRunning: called once the server listens, with its channel (tests read the
    ///     port a `port` of 0 got from it).
    public static func make(
        validator: GatewayValidator, cluster: String, host: String, port: Int, logger: Logger,
        connections: ConnectionLimits = ConnectionLimits(),
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> GatewayServer {
        GatewayServer(
            responder: ForwardAuthResponder(validator: validator, cluster: cluster, logger: logger),
            host: host, port: port, limits: connections, logger: logger, onServerRunning: onServerRunning)
    }
}
