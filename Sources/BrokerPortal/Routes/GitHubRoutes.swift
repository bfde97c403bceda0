import BrokerCore
import BrokerCrypto
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
    /// The OAuth web flow too (`github_client_secret`): "Sign in with GitHub" goes to GitHub's page.
    var webFlowEnabled: Bool { enabled && portal.services.configuration.githubWebFlowEnabled }
    /// Registered on the OAuth app as its callback URL.
    var redirectURI: String { portal.services.configuration.issuer + "/signin/github/callback" }

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
            return try await start(request, context, purpose: .link, next: nil, session: session)
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
        pages.get("/signin/github/web") { request, _ in try await startWebFlow(request) }
        pages.get("/signin/github/callback") { request, context in try await callback(request, context) }
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
            return try await finish(
                state.purpose, next: state.next, sessionIDHash: state.sessionIDHash, githubToken: githubToken, request, context,
                clear: clear)
        }
    }

    /// GitHub approved: sign in, sign up or link, as the flow was started for.
    private func finish(
        _ purpose: DeviceFlowState.Purpose, next: String?, sessionIDHash: String?, githubToken: String, _ request: Request,
        _ context: BrokerRequestContext, clear: String
    ) async throws -> Response {
        let services = portal.services
        let auditContext = portal.auditContext(request, context)
        let origin = portal.origin(request, context)
        do {
            switch purpose {
            case .signIn, .signUp:
                let started =
                    purpose == .signIn
                    ? try await services.sessions.portalSignIn(
                        githubToken: githubToken, throttled: false, portal: services.portalSessions, origin: origin,
                        context: auditContext)
                    : try await services.portalSignUp.signUp(githubToken: githubToken, origin: origin, context: auditContext)
                let target = purpose == .signIn ? SafeRedirect.target(next) : "/account?notice=\(Notice.welcome.rawValue)"
                return try await portal.signedIn(started, request, context, to: target, clearing: [portal.cookies.flow])
            case .link:
                // The browser that started the link must finish it, still signed in.
                guard let session = try await portal.session(of: request), session.idHash == sessionIDHash else {
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
            if purpose == .link, let session = try await portal.session(of: request) {
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

    /// To GitHub's authorize page, with a fresh `state` and PKCE verifier kept in the sealed
    /// flow cookie. A GET (a link): `form-action 'self'` would stop a form's redirect to GitHub.
    private func startWebFlow(_ request: Request) async throws -> Response {
        guard webFlowEnabled else {
            throw BrokerError(.unavailable, "GitHub's web sign-in is not configured on this broker (github_client_secret)")
        }
        let verifier = GitHubWebFlow.newCodeVerifier()
        let lifetime = 600
        let state = WebFlowState(
            state: Base64URL.encode(SecureRandom.bytes(16)), verifier: verifier,
            expiresAt: portal.services.clock.now().timeIntervalSince1970 + Double(lifetime),
            next: request.uri.queryParameters["next"].map(String.init).flatMap { SafeRedirect.isSafe($0) ? $0 : nil })
        let configuration = portal.services.configuration
        let location = GitHubWebFlow.authorizeURL(
            webURL: configuration.githubWebURL, clientID: configuration.githubClientID, redirectURI: redirectURI,
            state: state.state, codeChallenge: GitHubWebFlow.codeChallenge(for: verifier))
        return Portal.redirect(location, setCookies: [portal.cookies.setting(portal.cookies.flow, try sealer().seal(state), maxAge: lifetime)])
    }

    /// GitHub sends the browser back with `code` and `state`: the state must be the one this
    /// browser's sealed cookie holds (compared in constant time), then the code is exchanged
    /// with the cookie's verifier and the browser signed in, as with a device flow.
    private func callback(_ request: Request, _ context: BrokerRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let clear = portal.cookies.clearing(portal.cookies.flow)
        guard let github = portal.services.github, let cookie = portal.cookies.value(portal.cookies.flow, in: request),
            let state = try sealer().openWebFlow(cookie),
            portal.services.clock.now().timeIntervalSince1970 < state.expiresAt
        else {
            return Portal.redirect("/signin?notice=\(Notice.githubExpired.rawValue)", setCookies: [clear])
        }
        guard CSRFGuard.matches(query["state"].map(String.init), state.state) else { throw PortalFailure.forgedForm }
        if query["error"] != nil {
            return Portal.redirect("/signin?notice=\(Notice.githubDenied.rawValue)", setCookies: [clear])
        }
        guard let code = query["code"].map(String.init), !code.isEmpty else {
            return Portal.redirect("/signin?notice=\(Notice.githubExpired.rawValue)", setCookies: [clear])
        }
        let auditContext = portal.auditContext(request, context)
        let githubToken: String
        do {
            githubToken = try await github.exchangeAuthorizationCode(
                code, redirectURI: redirectURI, codeVerifier: state.verifier, clientIP: auditContext.clientIP)
        } catch let error as BrokerError where !error.code.isServerFailure {
            var response = try await SignInRoutes(portal: portal).signInPage(
                request, error: error.detail, status: .init(code: error.code.httpStatus))
            response.headers.append(HTTPField(name: .setCookie, value: clear))
            return response
        }
        return try await finish(.signIn, next: state.next, sessionIDHash: nil, githubToken: githubToken, request, context, clear: clear)
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
