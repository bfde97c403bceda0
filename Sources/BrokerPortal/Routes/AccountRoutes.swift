import BrokerCore
import BrokerServer
import HTTPTypes
import Hummingbird

/// `/account`: the holder's memberships, requests and sessions.
struct AccountRoutes {
    let portal: Portal

    func register(on pages: RouterGroup<BrokerRequestContext>) {
        pages.get("/account") { request, _ in
            let session = try await portal.requireSession(of: request)
            let overview = try await AccountOverview.read(
                for: session, in: portal.services.store, now: portal.services.clock.now())
            var chrome = try portal.chrome("Account", session: session, notice: request.uri.queryParameters["notice"].map(String.init))
            chrome.onAccount = true
            return portal.renderer.page("account", AccountView(chrome: chrome, user: session.user, overview: overview))
        }
    }
}
