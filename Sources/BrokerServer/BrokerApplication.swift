import BrokerCore
import Hummingbird
import Logging
import NIOCore

/// The broker's HTTP application: every route family on one router, behind the error and
/// access-log middleware.
///
/// ```swift
/// let app = BrokerApplication.make(services: services, host: "127.0.0.1", port: 8080, logger: logger)
/// try await app.runService()
/// ```
public enum BrokerApplication {
    public static func router(services: BrokerServices) -> Router<BrokerRequestContext> {
        let router = Router(context: BrokerRequestContext.self)
        router.add(middleware: AccessLogMiddleware())
        router.add(middleware: ErrorMiddleware())
        Generation1Routes(services: services).register(on: router)
        Generation2Routes(services: services).register(on: router)
        OAuthRoutes(services: services).register(on: router)
        KeyPublicationRoutes(services: services).register(on: router)
        SessionRoutes(services: services).register(on: router)
        MembershipRoutes(services: services).register(on: router)
        AdminRoutes(services: services).register(on: router)
        ContractRoutes().register(on: router)
        // Last: it must see every route, and wrap only the not-found answer.
        router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))
        return router
    }

    public static func make(
        services: BrokerServices, host: String, port: Int, logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: router(services: services),
            configuration: .init(address: .hostname(host, port: port), serverName: "broker"),
            onServerRunning: onServerRunning,
            logger: logger)
    }
}
