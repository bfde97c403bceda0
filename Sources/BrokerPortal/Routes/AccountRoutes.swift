import BrokerCore
import BrokerServer
import HTTPTypes
import Hummingbird

/// `/account` and its forms: the holder's memberships, requests, sessions and password. Every
/// form calls the core's self-service method (``AccountAdministration``) and answers 303 back to
/// the page, or the page again with the refusal next to the form that caused it.
struct AccountRoutes {
    let portal: Portal

    func register(on pages: RouterGroup<BrokerRequestContext>) {
        pages.get("/account") { request, _ in
            let session = try await portal.requireSession(of: request)
            return try await page(session, notice: request.uri.queryParameters["notice"].map(String.init))
        }
        pages.post("/account/requests") { request, context in
            try await act(request, context, done: .requestSent, errorsAt: { AccountFormErrors(join: $0.detail) }) { form, actor in
                guard let name = form.parameters["organization"], !name.isEmpty else {
                    throw BrokerError(.invalidRequest, "choose an organization")
                }
                _ = try await portal.services.accounts.requestMembership(organization: name, by: actor)
            }
        }
        pages.post("/account/requests/:org/withdraw") { request, context in
            let name = try context.parameters.decoded("org")
            return try await act(request, context, done: .requestWithdrawn, errorsAt: { AccountFormErrors(requests: $0.detail) }) { _, actor in
                try await portal.services.accounts.withdrawMembershipRequest(organization: name, by: actor)
            }
        }
        pages.post("/account/memberships/:org/leave") { request, context in
            let name = try context.parameters.decoded("org")
            return try await act(request, context, done: .organizationLeft, errorsAt: { AccountFormErrors(memberships: $0.detail) }) {
                _, actor in
                try await portal.services.accounts.leaveOrganization(name, by: actor)
            }
        }
        pages.post("/account/sessions/:id/signout") { request, context in
            let id = try context.parameters.decoded("id")
            return try await act(request, context, done: .sessionSignedOut, errorsAt: { AccountFormErrors(sessions: $0.detail) }) { _, actor in
                try await portal.services.accounts.revokeOwnSession(id, by: actor)
            }
        }
        pages.post("/account/sessions/signout-all") { request, context in
            var request = request
            let session = try await portal.requireSession(of: request)
            _ = try await portal.form(of: &request, expecting: try portal.csrf().token(for: session))
            let actor = AdministrativeActor(user: session.user, context: portal.auditContext(request, context))
            try await portal.services.accounts.revokeAllOwnSessions(by: actor)
            // This browser's session was one of them.
            return Portal.redirect(
                "/signin?notice=\(Notice.signedOutEverywhere.rawValue)", setCookies: [portal.cookies.clearing(portal.cookies.session)])
        }
        pages.post("/account/password") { request, context in try await changePassword(request, context) }
    }

    /// The account page, with `errors` next to their forms and the status of the refusal.
    func page(
        _ session: PortalSession, notice: String? = nil, errors: AccountFormErrors = AccountFormErrors(),
        status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]
    ) async throws -> Response {
        let services = portal.services
        let overview = try await AccountOverview.read(for: session, in: services.store, now: services.clock.now())
        let joinable = try await services.accounts.joinableOrganizations(by: session.actor)
        var chrome = try portal.chrome("Account", session: session, notice: notice)
        chrome.onAccount = true
        let view = AccountView(
            chrome: chrome, formCSRF: try portal.csrf().token(for: session), user: session.user, overview: overview,
            joinable: joinable, issuer: services.configuration.issuer, githubEnabled: GitHubRoutes(portal: portal).enabled,
            errors: errors)
        return portal.renderer.page("account", view, status: status, headers: headers)
    }

    /// One account form: 303 to the page with `done`'s notice, or the page again with the
    /// refusal placed by `errorsAt`.
    private func act(
        _ request: Request, _ context: BrokerRequestContext, done: Notice,
        errorsAt place: (BrokerError) -> AccountFormErrors,
        _ work: (URLEncodedForm, AdministrativeActor) async throws -> Void
    ) async throws -> Response {
        try await portal.submit(request, context, redirect: "/account?notice=\(done.rawValue)", work) { session, error in
            try await refusal(error, session, place(error))
        }
    }

    private func refusal(_ error: BrokerError, _ session: PortalSession, _ errors: AccountFormErrors) async throws -> Response {
        try await page(session, errors: errors, status: .init(code: error.code.httpStatus), headers: Portal.refusalHeaders(error))
    }

    private func changePassword(_ request: Request, _ context: BrokerRequestContext) async throws -> Response {
        var request = request
        let session = try await portal.requireSession(of: request)
        let form = try await portal.form(of: &request, expecting: try portal.csrf().token(for: session))
        let current = form.parameters["current"] ?? ""
        let new = form.parameters["new"] ?? ""
        // The one check of the portal's own: about the form, not a rule.
        guard new == form.parameters["confirm"] ?? "" else {
            return try await page(
                session, errors: AccountFormErrors(confirmPassword: "The two new passwords differ."), status: .badRequest)
        }
        let started: PortalSessionStart
        do {
            started = try await portal.services.sessions.portalPasswordChange(
                of: session, current: current, new: new, accounts: portal.services.accounts,
                portal: portal.services.portalSessions, origin: portal.origin(request, context),
                context: portal.auditContext(request, context))
        } catch let error as BrokerError where !error.code.isServerFailure {
            let errors =
                error.code == .invalidPassword
                ? AccountFormErrors(newPassword: error.detail) : AccountFormErrors(currentPassword: error.detail)
            return try await refusal(error, session, errors)
        }
        return Portal.redirect(
            "/account?notice=\(Notice.passwordChanged.rawValue)",
            setCookies: [portal.cookies.setting(portal.cookies.session, started.cookie)])
    }
}
