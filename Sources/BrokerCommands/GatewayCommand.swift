import ArgumentParser
import BrokerConnections
import BrokerGateway
import BrokerValidator
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// `broker gateway`: the forward-auth sidecar. It needs only the broker's JWKS URL, so it runs
/// on a cluster's gateway host with no access to the broker's data or keys.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run a forward-auth endpoint (nginx auth_request, Traefik ForwardAuth, Envoy ext_authz).",
        discussion: """
            Any request path: 200 with x-sliderule-account and x-sliderule-org-roles for a valid \
            token of this cluster, 401 for a missing or invalid token, 403 for another cluster's token \
            or for a request with an x-sliderule-* header that only a gateway may set. HEAD: the \
            same answer without its body.
            """)

    @Option(help: "The broker's JWKS URL, e.g. https://login.example.org/.well-known/jwks.json.") var jwks: String
    @Option(help: "The issuer (iss) tokens must carry, e.g. https://login.example.org.") var issuer: String
    @Option(help: "This cluster's name: tokens must name it in aud.") var cluster: String
    @Option(help: "Address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port: Int = 9000
    @Option(
        name: .customLong("refetch-interval"),
        help: "Seconds before a kid still unpublished after a fetch may cause another, and before retrying a failed fetch.")
    var refetchInterval: Int = 30
    @Option(help: "Seconds of clock skew tolerated on exp, nbf and iat (0...300).") var leeway: Int = 30
    @Option(
        name: .customLong("token-cache-size"),
        help: "Verified tokens remembered, so that a token's signature is checked once (about 1.1 KB each; 0 checks it on every request).")
    var tokenCacheSize: Int = VerifiedTokenCache.defaultCapacity
    @Option(
        name: .customLong("header-timeout"),
        help: "Seconds a client has to send a request's head, from connecting or from its first byte after a pause.")
    var headerTimeout: Int = 10
    @Option(name: .customLong("body-timeout"), help: "Seconds a client has to send a request's body, from the end of its head.")
    var bodyTimeout: Int = 30
    @Option(name: .customLong("idle-timeout"), help: "Seconds a kept-alive connection may wait for its next request.")
    var idleTimeout: Int = 60
    @Option(
        name: .customLong("max-connections"),
        help: "Connections open at once; at the cap the longest-waiting one is closed (default: from ulimit -n).")
    var maxConnections: Int?
    @Option(
        name: .customLong("max-connections-per-address"),
        help: "Connections open at once from one address; past it a new one is closed (default: a quarter of --max-connections).")
    var maxConnectionsPerAddress: Int?
    @Option(
        name: .customLong("log-level"),
        help: "trace, debug, info, notice, warning, error or critical (default: BROKER_LOG_LEVEL, else LOG_LEVEL, else info).")
    var logLevel: String?
    @Option(name: .customLong("log-format"), help: "text or json (default: BROKER_LOG_FORMAT, else text).")
    var logFormat: String?

    func validate() throws {
        if let refusal = HTTPJWKSSource.refusal(of: jwks) { throw ValidationError("--jwks: \(refusal)") }
        guard !cluster.isEmpty, cluster != "*" else { throw ValidationError("--cluster must name one cluster") }
        guard (0...AccessTokenChecks.maximumLeeway).contains(leeway) else {
            throw ValidationError("--leeway must be within 0...\(AccessTokenChecks.maximumLeeway)")
        }
        guard (0...Self.maximumTokenCacheSize).contains(tokenCacheSize) else {
            throw ValidationError("--token-cache-size must be within 0...\(Self.maximumTokenCacheSize)")
        }
        guard refetchInterval >= 1 else { throw ValidationError("--refetch-interval must be at least 1 second") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be within 0...65535") }
        for (flag, seconds) in [("--header-timeout", headerTimeout), ("--body-timeout", bodyTimeout), ("--idle-timeout", idleTimeout)] {
            guard (1...86_400).contains(seconds) else { throw ValidationError("\(flag) must be within 1...86400 seconds") }
        }
        if let problem = connectionLimits.problem { throw ValidationError(problem) }
        do {
            _ = try loggingSettings()
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// About 1 GB of verified tokens: more is a typo, not a plan.
    static let maximumTokenCacheSize = 1_000_000

    /// The timeouts and caps of the listener's connections.
    private var connectionLimits: ConnectionLimits {
        var limits = ConnectionLimits()
        limits.headerTimeout = .seconds(headerTimeout)
        limits.bodyTimeout = .seconds(bodyTimeout)
        limits.idleTimeout = .seconds(idleTimeout)
        if let maxConnections {
            limits.maximumConnections = maxConnections
            limits.maximumConnectionsPerAddress = ConnectionLimits.defaultMaximumConnectionsPerAddress(maximumConnections: maxConnections)
        }
        if let maxConnectionsPerAddress { limits.maximumConnectionsPerAddress = maxConnectionsPerAddress }
        return limits
    }

    /// The level and format, from the flags and the environment as `broker serve` reads them.
    private func loggingSettings() throws -> (level: String, format: String) {
        var flags: [String: String] = [:]
        if let logLevel { flags["log_level"] = logLevel }
        if let logFormat { flags["log_format"] = logFormat }
        return try ConfigurationLoader(environment: ProcessInfo.processInfo.environment).loadLogging(flags: flags)
    }

    func run() async throws {
        try await reportingErrors {
            let logging = try loggingSettings()
            LoggingBootstrap.run(level: logging.level, format: logging.format)
            let logger = Logger(label: "broker.gateway")
            var cache = JWKSCacheConfiguration()
            cache.refetchInterval = refetchInterval
            // A gateway answers from the keys it holds while it revalidates them.
            cache.serveStaleWhileRevalidating = true
            let source = HTTPJWKSSource(url: jwks, maximumSize: cache.maximumDocumentSize)
            let validator = GatewayApplication.validator(
                source: source, issuer: issuer, leeway: leeway, cache: cache, logger: logger, tokenCacheSize: tokenCacheSize)
            // Warm the cache; a broker that is down now is not fatal, the cache retries.
            await validator.keys.refresh()
            let limits = connectionLimits
            let app = NamedListener(host: host, port: port) { [host, port, cluster, jwks] onRunning in
                GatewayApplication.make(
                    validator: validator, cluster: cluster, host: host, port: port, logger: logger, connections: limits
                ) { channel in
                    onRunning()
                    let bound = channel.localAddress?.port ?? port
                    // Unbuffered: a test or supervisor reads the port before we exit.
                    FileHandle.standardOutput.write(Data(
                        "gateway listening on http://\(host):\(bound)\n  cluster \(cluster), keys from \(jwks)\n".utf8))
                }
            }
            do {
                try await ServiceGroup(
                    configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
                ).run()
            } catch {
                try? await source.shutdown()
                throw error
            }
            try await source.shutdown()
            let tokens = validator.verifiedTokens.statistics
            logger.info(
                "verified-token cache",
                metadata: [
                    "hits": "\(tokens.hits)", "misses": "\(tokens.misses)", "dropped": "\(tokens.dropped)",
                    "entries": "\(tokens.count)",
                ])
        }
    }
}
