import BrokerCore
import BrokerServer
import Foundation
import HTTPTypes
import Hummingbird

/// Sign-in with GitHub's device flow: `POST /signin/github/device` starts it (the sign-in
/// form's CSRF token), `GET /signin/github/device` shows the code and asks GitHub at most once
/// per GitHub's interval (a `<meta refresh>`, no script), `GET /signin/github/cancel` drops it.
/// The flow lives in a sealed cookie; the sign-in is ``BrokerSessionService``'s, as with a PAT.
struct GitHubRoutes {
    let portal: Portal

    var enabled: Bool { portal.services.github != nil && !portal.services.configuration.githubClientID.isEmpty }

    func register(on pages: RouterGroup<BrokerRequestContext>) {
        pages.post("/signin/github/device") { request, context in try await start(request, context) }
        pages.get("/signin/github/device") { request, context in try await poll(request, context) }
        pages.get("/signin/github/cancel") { _, _ in
            Portal.redirect("/signin", setCookies: [portal.cookies.clearing(portal.cookies.flow)])
        }
    }

    private func sealer() throws -> FlowSealer { FlowSealer(portalKey: try portal.services.portalKey.get()) }

    private func start(_ request: Request, _ context: BrokerRequestContext) async throws -> Response {
        var request = request
        guard let pre = portal.cookies.value(portal.cookies.preSession, in: request) else { throw PortalFailure.forgedForm }
        let form = try await portal.form(of: &request, expecting: try portal.csrf().token(forPreSession: pre))
        guard enabled, let github = portal.services.github else {
            throw BrokerError(.unavailable, "GitHub sign-in is not configured on this broker (github_client_id)")
        }
        let code = try await github.startDeviceFlow(clientIP: portal.auditContext(request, context).clientIP)
        // Shown as a link: a web address, never a `javascript:` or `data:` one.
        guard let scheme = URL(string: code.verificationURI)?.scheme?.lowercased(), ["https", "http"].contains(scheme) else {
            throw BrokerError(.githubBadResponse, "GitHub gave an unexpected verification address")
        }
        let now = portal.services.clock.now().timeIntervalSince1970
        let lifetime = min(max(code.expiresIn, 60), 900)
        let state = DeviceFlowState(
            deviceCode: code.deviceCode, userCode: code.userCode, verificationURI: code.verificationURI,
            interval: max(1, code.interval), lastPoll: now, expiresAt: now + Double(lifetime),
            next: form.parameters["next"].flatMap { SafeRedirect.isSafe($0) ? $0 : nil })
        return Portal.redirect(
            "/signin/github/device",
            setCookies: [portal.cookies.setting(portal.cookies.flow, try sealer().seal(state), maxAge: lifetime)])
    }

    private func poll(_ request: Request, _ context: BrokerRequestContext) async throws -> Response {
        guard let github = portal.services.github, let cookie = portal.cookies.value(portal.cookies.flow, in: request),
            var state = try sealer().open(cookie)
        else {
            return Portal.redirect("/signin?notice=\(Notice.githubExpired.rawValue)")
        }
        let now = portal.services.clock.now().timeIntervalSince1970
        let clear = portal.cookies.clearing(portal.cookies.flow)
        guard now < state.expiresAt else { return Portal.redirect("/signin?notice=\(Notice.githubExpired.rawValue)", setCookies: [clear]) }
        // GitHub is asked at most once per interval, whatever the browser does.
        guard now >= state.lastPoll + Double(state.interval) else { return try page(state, setCookie: nil) }
        let auditContext = portal.auditContext(request, context)
        switch try await github.pollDeviceToken(deviceCode: state.deviceCode, clientIP: auditContext.clientIP) {
        case .pending(_, let interval):
            state.lastPoll = now
            state.interval = max(state.interval, interval)
            let remaining = max(1, Int(state.expiresAt - now))
            return try page(state, setCookie: portal.cookies.setting(portal.cookies.flow, try sealer().seal(state), maxAge: remaining))
        case .failed(let error):
            let notice: Notice = error == "access_denied" ? .githubDenied : .githubExpired
            return Portal.redirect("/signin?notice=\(notice.rawValue)", setCookies: [clear])
        case .authorized(let githubToken):
            let started: PortalSessionStart
            do {
                started = try await portal.services.sessions.portalSignIn(
                    githubToken: githubToken, throttled: false, portal: portal.services.portalSessions,
                    origin: portal.origin(request, context), context: auditContext)
            } catch let error as BrokerError where !error.code.isServerFailure {
                // Approved at GitHub, refused here (no account, no organization admits the user).
                var response = try await SignInRoutes(portal: portal).signInPage(request, error: error.detail, status: .init(code: error.code.httpStatus))
                response.headers.append(HTTPField(name: .setCookie, value: clear))
                return response
            }
            return Portal.redirect(
                SafeRedirect.target(state.next),
                setCookies: [
                    portal.cookies.setting(portal.cookies.session, started.cookie), clear,
                    portal.cookies.clearing(portal.cookies.preSession),
                ])
        }
    }

    private func page(_ state: DeviceFlowState, setCookie: String?) throws -> Response {
        var chrome = try portal.chrome("Sign in with GitHub", session: nil)
        chrome.refreshSeconds = state.interval
        let view = GitHubDeviceView(chrome: chrome, userCode: state.userCode, verificationURI: state.verificationURI, interval: state.interval)
        var headers: HTTPFields = [:]
        if let setCookie { headers[.setCookie] = setCookie }
        return portal.renderer.page("github_device", view, headers: headers)
    }
}
