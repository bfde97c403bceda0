import BrokerCore
import BrokerServer
import HTTPTypes
import Hummingbird

/// `/signup`: a new account and its first session, when `portal_signup` is `open`.
struct SignUpRoutes {
    let portal: Portal

    func register(on pages: RouterGroup<BrokerRequestContext>) {
        pages.get("/signup") { request, _ in try await show(request) }
        pages.post("/signup") { request, context in try await signUp(request, context) }
    }

    private var isOpen: Bool { portal.services.portalSignUp.isOpen }

    private func view(pre: String, typedName: String, invitation: String) throws -> SignUpView {
        let signUp = portal.services.portalSignUp
        return SignUpView(
            chrome: try portal.chrome("Create an account", session: nil), open: signUp.isOpen,
            acceptsSignUps: signUp.takesInvitations,
            githubEnabled: GitHubRoutes(portal: portal).enabled, csrf: try portal.csrf().token(forPreSession: pre),
            typedName: typedName, invitation: String(invitation.prefix(64)))
    }

    private func show(_ request: Request) async throws -> Response {
        if try await portal.session(of: request) != nil { return Portal.redirect("/account") }
        let (pre, setCookie) = portal.preSession(of: request)
        let view = try view(pre: pre, typedName: "", invitation: request.uri.queryParameters["invite"].map(String.init) ?? "")
        var headers: HTTPFields = [:]
        if let setCookie { headers[.setCookie] = setCookie }
        return portal.renderer.page("signup", view, headers: headers)
    }

    private func signUp(_ request: Request, _ context: BrokerRequestContext) async throws -> Response {
        var request = request
        guard let pre = portal.cookies.value(portal.cookies.preSession, in: request) else { throw PortalFailure.forgedForm }
        let form = try await portal.form(of: &request, expecting: try portal.csrf().token(forPreSession: pre))
        let username = form.parameters["username"] ?? ""
        let password = form.parameters["password"] ?? ""
        let invitation = form.parameters["invitation"] ?? ""
        var view = try view(pre: pre, typedName: String(username.prefix(200)), invitation: invitation)
        guard password == form.parameters["confirm"] ?? "" else {
            view.confirmError = "The two passwords differ."
            return portal.renderer.page("signup", view, status: .badRequest)
        }
        let started: PortalSessionStart
        do {
            started = try await portal.services.portalSignUp.signUp(
                username: username, password: password, invitation: invitation.isEmpty ? nil : invitation,
                origin: portal.origin(request, context), context: portal.auditContext(request, context))
        } catch let error as BrokerError where !error.code.isServerFailure {
            switch error.code {
            case .invalidUsername, .alreadyExists, .conflict: view.usernameError = error.detail
            case .invalidPassword: view.passwordError = error.detail
            case .invalidRequest where error == AccountAdministration.invalidInvitation: view.invitationError = error.detail
            default: view.error = error.detail
            }
            return portal.renderer.page(
                "signup", view, status: .init(code: error.code.httpStatus), headers: Portal.refusalHeaders(error))
        }
        return try await portal.signedIn(started, request, context, to: "/account?notice=\(Notice.welcome.rawValue)")
    }
}
