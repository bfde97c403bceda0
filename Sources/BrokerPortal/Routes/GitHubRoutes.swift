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
        pages.post("/signin/github/device") { request, context in
            var request = request
            let form = try await anonymousForm(&request)
            return try await start(request, context, purpose: .signIn, next: form.parameters["next"], session: nil)
        }
        pages.post("/signup/github") { request, context in
            var request = request
            _ = try await anonymousForm(&request)
            try await portal.services.portalSignUp.admitGitHubSignUp(context: portal.auditContext(request, context))
            return try await start(request, context, purpose: .signUp, next: nil, session: nil)
        }
        pages.post("/account/github/link") { request, context in
            var request = request
            let session = try await portal.requireSession(of: request)
            _ = try await portal.form(of: &request, expecting: try portal.csrf().token(for: session))
            try portal.services.portalSessions.requireRecentSignIn(session)
            return try await start(request, context, purpose: .link, next: "/account", session: session)
        }
        pages.post("/account/github/unlink") { request, context in
            var request = request
            let session = try await portal.requireSession(of: request)
            _ = try await portal.form(of: &request, expecting: try portal.csrf().token(for: session))
            try portal.services.portalSessions.requireRecentSignIn(session)
            let actor = AdministrativeActor(user: session.user, context: portal.auditContext(request, context))
            try await portal.services.accounts.unlinkOwnGitHub(by: actor)
            // A credential change: every session ended, this browser's too.
            return Portal.redirect(
                "/signin?notice=\(Notice.githubUnlinked.rawValue)", setCookies: [portal.cookies.clearing(portal.cookies.session)])
        }
        pages.get("/signin/github/device") { request, context in try await poll(request, context) }
        pages.get("/signin/github/cancel") { _, _ in
            Portal.redirect("/signin", setCookies: [portal.cookies.clearing(portal.cookies.flow)])
        }
    }

    private func sealer() throws -> FlowSealer { FlowSealer(portalKey: try portal.services.portalKey.get()) }

    /// A form of a signed-out page (sign-in, sign-up): bound to the pre-session cookie.
    private func anonymousForm(_ request: inout Request) async throws -> URLEncodedForm {
        guard let pre = portal.cookies.value(portal.cookies.preSession, in: request) else { throw PortalFailure.forgedForm }
        return try await portal.form(of: &request, expecting: try portal.csrf().token(forPreSession: pre))
    }

    private func start(
        _ request: Request, _ context: BrokerRequestContext, purpose: DeviceFlowState.Purpose, next: String?,
        session: PortalSession?
    ) async throws -> Response {
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
            next: next.flatMap { SafeRedirect.isSafe($0) ? $0 : nil }, purpose: purpose, sessionIDHash: session?.idHash)
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
            return try await finish(state, githubToken: githubToken, request, context, clear: clear)
        }
    }

    /// GitHub approved: sign in, sign up or link, as the flow was started for.
    private func finish(
        _ state: DeviceFlowState, githubToken: String, _ request: Request, _ context: BrokerRequestContext, clear: String
    ) async throws -> Response {
        let services = portal.services
        let auditContext = portal.auditContext(request, context)
        let origin = portal.origin(request, context)
        do {
            switch state.purpose {
            case .signIn, .signUp:
                let started =
                    state.purpose == .signIn
                    ? try await services.sessions.portalSignIn(
                        githubToken: githubToken, throttled: false, portal: services.portalSessions, origin: origin,
                        context: auditContext)
                    : try await services.portalSignUp.signUp(githubToken: githubToken, origin: origin, context: auditContext)
                let target = state.purpose == .signIn ? SafeRedirect.target(state.next) : "/account?notice=\(Notice.welcome.rawValue)"
                return Portal.redirect(
                    target,
                    setCookies: [
                        portal.cookies.setting(portal.cookies.session, started.cookie), clear,
                        portal.cookies.clearing(portal.cookies.preSession),
                    ])
            case .link:
                // The browser that started the link must finish it, still signed in.
                guard let session = try await portal.session(of: request), session.idHash == state.sessionIDHash else {
                    throw PortalFailure.forgedForm
                }
                guard let github = services.github else { throw BrokerError(.githubUnavailable, "this broker has no GitHub client") }
                let identity = try await github.resolver.identity(for: githubToken)
                try await services.accounts.linkOwnGitHub(identity, by: AdministrativeActor(user: session.user, context: auditContext))
                return Portal.redirect("/account?notice=\(Notice.githubLinked.rawValue)", setCookies: [clear])
            }
        } catch let error as BrokerError where !error.code.isServerFailure {
            // Approved at GitHub, refused here (no account, no organization admits the user, a
            // GitHub user linked to another account).
            var response: Response
            if state.purpose == .link, let session = try await portal.session(of: request) {
                response = try await AccountRoutes(portal: portal).page(
                    session, errors: AccountFormErrors(github: error.detail), status: .init(code: error.code.httpStatus))
            } else {
                response = try await SignInRoutes(portal: portal).signInPage(
                    request, error: error.detail, status: .init(code: error.code.httpStatus))
            }
            response.headers.append(HTTPField(name: .setCookie, value: clear))
            return response
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
