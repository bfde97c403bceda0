import BrokerConnections
import BrokerCore
import Hummingbird
import Logging
import NIOCore
import Prometheus

/// A set of routes another module adds to the broker's router (the portal's pages).
public protocol BrokerRouteFamily: Sendable {
    func register(on router: Router<BrokerRequestContext>)
}

/// The broker's HTTP application: every route family on one router, behind the request-id,
/// metrics, access-log and error middleware; `GET /metrics` when given a Prometheus registry.
///
/// ```swift
/// let registry = PrometheusCollectorRegistry()
/// MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
/// let app = BrokerApplication.make(services: services, host: "127.0.0.1", port: 8080, logger: logger, metrics: registry)
/// try await app.runService()
/// ```
public enum BrokerApplication {
    /// - Parameters:
    ///   - extraRoutes: route families of other modules (the portal), registered after the API's,
    ///     inside the same middleware.
    ///   - provisioner: where the generation-1 client's scaling calls go (`provisioner_url`);
    ///     nil: they are answered 501. Its owner shuts it down.
    public static func router(
        services: BrokerServices, metrics: PrometheusCollectorRegistry? = nil, extraRoutes: [any BrokerRouteFamily] = [],
        provisioner: ProvisionerClient? = nil
    ) -> Router<BrokerRequestContext> {
        // Every GET route also answers HEAD, as GET without the body.
        let router = Router(context: BrokerRequestContext.self, options: .autoGenerateHeadEndpoints)
        // Outermost first: the id must be in the logger before anything logs, and on every
        // response the inner middleware produced, error answers included.
        router.add(middleware: HeadResponseMiddleware())
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: HTTPMetricsMiddleware())
        router.add(middleware: AccessLogMiddleware())
        router.add(middleware: ErrorMiddleware())
        Generation1Routes(services: services).register(on: router)
        ScalingRoutes(services: services, provisioner: provisioner).register(on: router)
        Generation2Routes(services: services).register(on: router)
        OAuthRoutes(services: services).register(on: router)
        KeyPublicationRoutes(services: services).register(on: router)
        SessionRoutes(services: services).register(on: router)
        MembershipRoutes(services: services).register(on: router)
        AdminRoutes(services: services).register(on: router)
        if let metrics { MetricsRoutes(registry: metrics).register(on: router) }
        ContractRoutes().register(on: router)
        for family in extraRoutes { family.register(on: router) }
        // Last: it must see every route, and wrap only the not-found answer.
        router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))
        return router
    }

    /// Connections the metrics listener keeps open at once (the longest-waiting makes room).
    static let metricsConnectionCap = 16

    /// `GET /metrics` alone, for a listener of its own (`metrics_port`): every other path is 404.
    public static func makeMetrics(
        registry: PrometheusCollectorRegistry, host: String, port: Int, logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: HeadResponseMiddleware())
        MetricsRoutes(registry: registry).register(on: router)
        // Its connections hold descriptors too: a few suffice for the scrapers.
        var connections = ConnectionLimits()
        connections.maximumConnections = min(connections.maximumConnections, metricsConnectionCap)
        connections.maximumConnectionsPerAddress = connections.maximumConnections
        return Application(
            router: router,
            server: ConnectionGuard(limits: connections, logger: logger, reportsMetrics: false).http1(),
            configuration: .init(address: .hostname(host, port: port), serverName: "broker-metrics"),
            onServerRunning: onServerRunning,
            logger: logger)
    }

    /// - Parameter connections: timeouts and caps of the listener's connections; a trusted proxy
    ///   (`trusted_proxies`) is capped only by the total.
    public static func make(
        services: BrokerServices, host: String, port: Int, logger: Logger, metrics: PrometheusCollectorRegistry? = nil,
        connections: ConnectionLimits = ConnectionLimits(), extraRoutes: [any BrokerRouteFamily] = [],
        provisioner: ProvisionerClient? = nil,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let proxies = services.trustedProxies
        let guarded = ConnectionGuard(limits: connections, logger: logger) { peer in
            IPAddress(peer).map(proxies.isTrusted) ?? false
        }
        return Application(
            router: router(services: services, metrics: metrics, extraRoutes: extraRoutes, provisioner: provisioner),
            server: guarded.http1(),
            configuration: .init(address: .hostname(host, port: port), serverName: "broker"),
            onServerRunning: onServerRunning,
            logger: logger)
    }
}
