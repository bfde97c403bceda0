import BrokerCore
import BrokerServer
import Hummingbird

/// The portal: the broker's HTML pages (docs/portal.md lists every URL). Each page calls the
/// same core services as its API twin and holds no rule of its own.
///
/// ```swift
/// let app = BrokerApplication.make(..., extraRoutes: [PortalRoutes(services: services)])
/// ```
public struct PortalRoutes: BrokerRouteFamily {
    let portal: Portal

    public init(services: BrokerServices) {
        portal = Portal(services: services)
    }

    public func register(on router: Router<BrokerRequestContext>) {
        // Outermost first: the headers go on the error pages too.
        let pages = router.group()
            .add(middleware: PortalHeadersMiddleware(sessionCookie: portal.cookies.session))
            .add(middleware: PortalErrorMiddleware(portal: portal))
        SignInRoutes(portal: portal).register(on: pages)
        SignUpRoutes(portal: portal).register(on: pages)
        GitHubRoutes(portal: portal).register(on: pages)
        AccountRoutes(portal: portal).register(on: pages)
        OrganizationRoutes(portal: portal).register(on: pages)
        PortalAdminRoutes(portal: portal).register(on: pages)
        // The stylesheet is not a page: no portal headers beyond its own.
        AssetRoutes().register(on: router)
    }
}
