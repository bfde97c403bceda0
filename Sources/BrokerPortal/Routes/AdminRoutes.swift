import BrokerCore
import BrokerServer
import Foundation
import HTTPTypes
import Hummingbird

/// `/admin`: accounts, organizations, signing keys and the audit log, for global admins. Every
/// page and form calls the core rule the admin API calls (``AccountAdministration``,
/// ``KeyAdministration``, ``AuditBrowsing``), which answers 403 to anyone else.
struct PortalAdminRoutes {
    let portal: Portal

    func register(on pages: RouterGroup<BrokerRequestContext>) {
        pages.get("/admin") { request, _ in
            _ = try await portal.requireSession(of: request)
            return Portal.redirect("/admin/users")
        }
        pages.get("/admin/users") { request, _ in
            let session = try await portal.requireSession(of: request)
            let after = request.uri.queryParameters["after"].flatMap { Int64(String($0)) } ?? 0
            let page = try await portal.services.accounts.users(after: after, limit: 50, by: session.actor)
            let view = AdminUsersView(chrome: try chrome("Accounts", session, request), users: page.users, next: page.next)
            return portal.renderer.page("admin_users", view)
        }
        pages.get("/admin/users/:user") { request, context in
            let session = try await portal.requireSession(of: request)
            return try await userPage(try context.parameters.decoded("user"), session, request)
        }
        // The forms of one account's page, each the admin API's rule for it.
        typealias UserAction = @Sendable (AccountAdministration, String, URLEncodedForm, AdministrativeActor) async throws -> Void
        let userForms: [(path: String, done: Notice, work: UserAction)] = [
            ("disable", .accountDisabled, { accounts, name, _, actor in try await accounts.setActive(name, false, by: actor) }),
            ("enable", .accountEnabled, { accounts, name, _, actor in try await accounts.setActive(name, true, by: actor) }),
            ("password", .passwordReset, { accounts, name, form, actor in
                try await accounts.setPassword(name, password: form.parameters["password"] ?? "", by: actor)
            }),
            ("role", .roleChanged, { accounts, name, form, actor in
                let text = form.parameters["role"] ?? ""
                guard text == "none" || GlobalRole(rawValue: text) != nil else {
                    throw BrokerError(.invalidRequest, "choose a role: none, admin or introspector")
                }
                try await accounts.setGlobalRole(name, to: GlobalRole(rawValue: text), by: actor)
            }),
            ("sessions/revoke-all", .sessionsEnded, { accounts, name, _, actor in try await accounts.revokeAllSessions(of: name, by: actor) }),
        ]
        for (path, done, work) in userForms {
            pages.post(RouterPath("/admin/users/:user/\(path)")) { request, context in
                let name = try context.parameters.decoded("user")
                return try await act(request, context, done: "/admin/users/\(PortalPaths.segment(name))", notice: done) { form, actor in
                    try await work(portal.services.accounts, name, form, actor)
                } refused: { session, error in try await userPage(name, session, request, error: error) }
            }
        }
        pages.post("/admin/users/:user/sessions/:id/revoke") { request, context in
            let (name, id) = (try context.parameters.decoded("user"), try context.parameters.decoded("id"))
            return try await act(request, context, done: "/admin/users/\(PortalPaths.segment(name))", notice: .sessionSignedOut) {
                _, actor in try await portal.services.accounts.revokeSession(id, of: name, by: actor)
            } refused: { session, error in try await userPage(name, session, request, error: error) }
        }

        pages.get("/admin/orgs") { request, _ in
            let session = try await portal.requireSession(of: request)
            return try await organizationsPage(session, request)
        }
        pages.post("/admin/orgs") { request, context in
            try await act(request, context, done: "/admin/orgs", notice: .organizationCreated) { form, actor in
                let cluster = (form.parameters["cluster"] ?? "").trimmingCharacters(in: .whitespaces)
                try await portal.services.accounts.addOrganization(
                    (form.parameters["name"] ?? "").trimmingCharacters(in: .whitespaces), clusterName: cluster.isEmpty ? nil : cluster,
                    by: actor)
            } refused: { session, error in try await organizationsPage(session, request, error: error) }
        }
        pages.post("/admin/orgs/:org/delete") { request, context in
            let name = try context.parameters.decoded("org")
            return try await act(request, context, done: "/admin/orgs", notice: .organizationDeleted) { form, actor in
                guard form.parameters["confirm"] == name else {
                    throw BrokerError(.invalidRequest, "type the organization's name, \(name), to delete it")
                }
                try await portal.services.accounts.deleteOrganization(name, by: actor)
            } refused: { session, error in try await organizationsPage(session, request, error: error) }
        }

        pages.get("/admin/keys") { request, _ in
            let session = try await portal.requireSession(of: request)
            return try await keysPage(session, request)
        }
        pages.post("/admin/keys/rotate") { request, context in
            try await act(request, context, done: "/admin/keys", notice: .keyRotated) { form, actor in
                _ = try await portal.services.keys.rotate(force: form.parameters["force"] == "true", by: actor)
            } refused: { session, error in try await keysPage(session, request, error: error) }
        }
        pages.post("/admin/keys/:kid/retire") { request, context in
            let kid = try context.parameters.decoded("kid")
            return try await act(request, context, done: "/admin/keys", notice: .keyWithdrawn) { form, actor in
                guard form.parameters["confirm"] == kid else {
                    throw BrokerError(.invalidRequest, "type the key id to withdraw the key")
                }
                _ = try await portal.services.keys.retire(kid: kid, by: actor)
            } refused: { session, error in try await keysPage(session, request, error: error) }
        }

        pages.get("/admin/invites") { request, _ in
            let session = try await portal.requireSession(of: request)
            return try await invitationsPage(session, request)
        }
        pages.post("/admin/invites") { request, context in
            var request = request
            let session = try await portal.requireSession(of: request)
            _ = try await portal.form(of: &request, expecting: try portal.csrf().token(for: session))
            let actor = AdministrativeActor(user: session.user, context: portal.auditContext(request, context))
            let (_, code) = try await portal.services.accounts.createInvitation(
                organization: nil, role: .member, lifetime: Invitation.defaultLifetime, by: actor)
            // Shown on this answer only (no-store), never in a URL the browser keeps.
            return try await invitationsPage(session, request, newCode: code)
        }
        pages.post("/admin/invites/:id/revoke") { request, context in
            let id = try context.parameters.decoded("id")
            return try await act(request, context, done: "/admin/invites", notice: .invitationRevoked) { _, actor in
                try await portal.services.accounts.revokeInvitation(id: id, by: actor)
            } refused: { session, error in try await invitationsPage(session, request, error: error) }
        }
        pages.get("/admin/audit") { request, _ in
            let session = try await portal.requireSession(of: request)
            return try await auditPage(session, request)
        }
    }

    // MARK: Pages

    private func chrome(_ title: String, _ session: PortalSession, _ request: Request) throws -> PageChrome {
        var chrome = try portal.chrome(title, session: session, notice: request.uri.queryParameters["notice"].map(String.init))
        chrome.onAdmin = true
        return chrome
    }

    private func status(of error: BrokerError?) -> HTTPResponse.Status { error.map { .init(code: $0.code.httpStatus) } ?? .ok }

    private func userPage(_ name: String, _ session: PortalSession, _ request: Request, error: BrokerError? = nil) async throws -> Response {
        let accounts = portal.services.accounts
        let user = try await accounts.user(named: name, by: session.actor)
        let sessions = try await accounts.sessions(of: user.username, by: session.actor)
        let view = AdminUserView(
            chrome: try chrome("Account \(user.username)", session, request), formCSRF: try portal.csrf().token(for: session),
            user: user, sessions: sessions, now: portal.services.clock.now(), actionError: error?.detail)
        return portal.renderer.page("admin_user", view, status: status(of: error))
    }

    private func organizationsPage(_ session: PortalSession, _ request: Request, error: BrokerError? = nil) async throws -> Response {
        let organizations = try await portal.services.accounts.organizations(by: session.actor)
        let view = AdminOrganizationsView(
            chrome: try chrome("Organizations", session, request), formCSRF: try portal.csrf().token(for: session),
            organizations: organizations, actionError: error?.detail)
        return portal.renderer.page("admin_orgs", view, status: status(of: error))
    }

    private func keysPage(_ session: PortalSession, _ request: Request, error: BrokerError? = nil) async throws -> Response {
        let keys = try portal.services.keys.list(by: session.actor)
        let view = AdminKeysView(
            chrome: try chrome("Signing keys", session, request), formCSRF: try portal.csrf().token(for: session), keys: keys,
            actionError: error?.detail)
        return portal.renderer.page("admin_keys", view, status: status(of: error))
    }

    private func invitationsPage(
        _ session: PortalSession, _ request: Request, newCode: String? = nil, error: BrokerError? = nil
    ) async throws -> Response {
        let invitations = try await portal.services.accounts.invitations(organization: nil, by: session.actor)
        let view = AdminInvitationsView(
            chrome: try chrome("Invitations", session, request), formCSRF: try portal.csrf().token(for: session),
            invitations: invitations, now: portal.services.clock.now(), newCode: newCode,
            issuer: portal.services.configuration.issuer, actionError: error?.detail)
        return portal.renderer.page("admin_invites", view, status: status(of: error))
    }

    private func auditPage(_ session: PortalSession, _ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        func field(_ name: String) -> String { query[Substring(name)].map { String($0).trimmingCharacters(in: .whitespaces) } ?? "" }
        let limit = 100
        let typed = AuditBrowsing.Query(
            since: field("since"), actor: field("actor"), organization: field("org"), action: field("action"),
            session: field("session"))
        var filterError: String?
        var events: [AuditEvent] = []
        do {
            events = try await AuditBrowsing(path: portal.services.configuration.auditLogPath).recent(
                typed, now: portal.services.clock.now(), limit: limit, by: session.actor)
        } catch let error as BrokerError where error.code == .invalidRequest {
            filterError = error.detail
        }
        let rows = events.map { event in
            AdminAuditView.Row(
                time: PortalDates.display(event.time, seconds: true), timeISO: PortalDates.iso(event.time), action: event.action.rawValue,
                outcome: event.outcome.rawValue, actor: event.actor ?? "—", organization: event.organization ?? "—",
                target: event.target ?? "—", reason: event.reason ?? "—", clientIP: event.clientIP ?? "—")
        }
        let view = AdminAuditView(
            chrome: try chrome("Audit", session, request), since: field("since"), actor: field("actor"), org: field("org"),
            action: field("action"), session: field("session"), limit: limit, events: rows, hasEvents: !rows.isEmpty,
            filterError: filterError)
        return portal.renderer.page("admin_audit", view, status: filterError == nil ? .ok : .badRequest)
    }

    // MARK: Forms

    /// One admin form: 303 to `done` with `notice`, or the page again with the refusal (403 and
    /// 404 are the error pages).
    private func act(
        _ request: Request, _ context: BrokerRequestContext, done: String, notice: Notice,
        _ work: (URLEncodedForm, AdministrativeActor) async throws -> Void,
        refused: (PortalSession, BrokerError) async throws -> Response
    ) async throws -> Response {
        try await portal.submit(
            request, context, redirect: "\(done)?notice=\(notice.rawValue)", refusalsOnPage: Portal.shownOnManagerPages, work,
            refused: refused)
    }
}
