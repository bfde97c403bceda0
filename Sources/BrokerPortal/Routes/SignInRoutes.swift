import BrokerCore
import BrokerServer
import HTTPTypes
import Hummingbird

/// `/`, `/signin` and `/signout`.
struct SignInRoutes {
    let portal: Portal

    func register(on pages: RouterGroup<BrokerRequestContext>) {
        pages.get("/") { request, _ in
            let session = try await portal.session(of: request)
            return Portal.redirect(session == nil ? "/signin" : "/account")
        }
        pages.get("/signin") { request, _ in try await showSignIn(request) }
        pages.post("/signin") { request, context in try await signIn(request, context) }
        pages.get("/signout") { request, _ in try await showSignOut(request) }
        pages.post("/signout") { request, context in try await signOut(request, context) }
    }

    private func showSignIn(_ request: Request) async throws -> Response {
        let next = request.uri.queryParameters["next"].map(String.init)
        if try await portal.session(of: request) != nil { return Portal.redirect(SafeRedirect.target(next)) }
        return try await signInPage(request)
    }

    /// The sign-in form (a pre-session cookie set when the browser has none), with `error`
    /// shown above it and `username` kept.
    func signInPage(
        _ request: Request, next: String? = nil, username: String = "", error: String? = nil, status: HTTPResponse.Status = .ok,
        headers extra: HTTPFields = [:]
    ) async throws -> Response {
        let next = next ?? request.uri.queryParameters["next"].map(String.init)
        let (pre, setCookie) = portal.preSession(of: request)
        let notice = error == nil ? request.uri.queryParameters["notice"].map(String.init) : nil
        let view = SignInView(
            chrome: try portal.chrome("Sign in", session: nil, notice: notice), csrf: try portal.csrf().token(forPreSession: pre),
            next: next.flatMap { SafeRedirect.isSafe($0) ? $0 : nil }, username: String(username.prefix(200)), error: error,
            signupOpen: portal.services.portalSignUp.isOpen, githubEnabled: GitHubRoutes(portal: portal).enabled,
            githubWebHref: GitHubRoutes(portal: portal).webFlowEnabled
                ? "/signin/github/web" + (next.flatMap { SafeRedirect.isSafe($0) ? "?next=" + PortalPaths.segment($0) : nil } ?? "")
                : nil)
        var headers = extra
        if let setCookie { headers.append(HTTPField(name: .setCookie, value: setCookie)) }
        return portal.renderer.page("signin", view, status: status, headers: headers)
    }

    private func signIn(_ request: Request, _ context: BrokerRequestContext) async throws -> Response {
        var request = request
        // The anonymous form is bound to this browser's pre-session: a form posted from
        // another site carries no valid token for it.
        guard let pre = portal.cookies.value(portal.cookies.preSession, in: request) else { throw PortalFailure.forgedForm }
        let form = try await portal.form(of: &request, expecting: try portal.csrf().token(forPreSession: pre))
        let username = form.parameters["username"] ?? ""
        let password = form.parameters["password"] ?? ""
        let next = form.parameters["next"]
        let auditContext = portal.auditContext(request, context)
        let started: PortalSessionStart
        do {
            started = try await portal.services.sessions.portalSignIn(
                username: username, password: password, portal: portal.services.portalSessions,
                origin: portal.origin(request, context), context: auditContext)
        } catch let error as BrokerError where !error.code.isServerFailure {
            return try await signInPage(
                request, next: next ?? "", username: username, error: error.detail, status: .init(code: error.code.httpStatus),
                headers: Portal.refusalHeaders(error))
        }
        return try await portal.signedIn(started, request, context, to: SafeRedirect.target(next))
    }

    private func showSignOut(_ request: Request) async throws -> Response {
        guard let session = try await portal.session(of: request) else { return Portal.redirect("/signin") }
        let view = SignOutView(chrome: try portal.chrome("Sign out", session: session), csrf: try portal.csrf().token(for: session))
        return portal.renderer.page("signout", view)
    }

    private func signOut(_ request: Request, _ context: BrokerRequestContext) async throws -> Response {
        var request = request
        let clear = portal.cookies.clearing(portal.cookies.session)
        // Without a live session there is nothing to end: just forget the cookie.
        guard let session = try await portal.session(of: request) else { return Portal.redirect("/signin", setCookies: [clear]) }
        _ = try await portal.form(of: &request, expecting: try portal.csrf().token(for: session))
        try await portal.services.portalSessions.end(session, context: portal.auditContext(request, context))
        return Portal.redirect("/signin?notice=\(Notice.signedOut.rawValue)", setCookies: [clear])
    }
}
