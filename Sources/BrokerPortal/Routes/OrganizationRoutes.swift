import BrokerCore
import BrokerServer
import Foundation
import HTTPTypes
import Hummingbird

/// `/orgs/<org>`: an organization's page for its owners and admins (and global admins):
/// requests, members, token policy, how to connect. The page and every form call the manager's
/// core rules (``AccountAdministration``), which answer 403 to anyone else.
struct OrganizationRoutes {
    let portal: Portal

    func register(on pages: RouterGroup<BrokerRequestContext>) {
        pages.get("/orgs/:org") { request, context in
            let session = try await portal.requireSession(of: request)
            return try await page(try context.parameters.decoded("org"), session, notice: request.uri.queryParameters["notice"].map(String.init))
        }
        // The forms about one account of the organization: a request to decide, a member to manage.
        typealias AccountForm = @Sendable (AccountAdministration, String, String, URLEncodedForm, AdministrativeActor) async throws -> Void
        typealias Placed = @Sendable (String) -> OrganizationFormErrors
        let inRequests: Placed = { OrganizationFormErrors(requests: $0) }
        let inMembers: Placed = { OrganizationFormErrors(members: $0) }
        let accountForms: [(path: String, done: Notice, errorsAt: Placed, work: AccountForm)] = [
            ("requests/:user/approve", .approved, inRequests, { accounts, name, username, form, actor in
                _ = try await accounts.approveMembership(organization: name, username: username, role: try Self.role(form), by: actor)
            }),
            ("requests/:user/deny", .declined, inRequests, { accounts, name, username, _, actor in
                try await accounts.denyMembership(organization: name, username: username, by: actor)
            }),
            ("members/:user/role", .roleChanged, inMembers, { accounts, name, username, form, actor in
                _ = try await accounts.changeRole(organization: name, username: username, to: try Self.role(form), by: actor)
            }),
            ("members/:user/remove", .memberRemoved, inMembers, { accounts, name, username, _, actor in
                try await accounts.removeMember(organization: name, username: username, by: actor)
            }),
        ]
        for (path, done, placed, work) in accountForms {
            pages.post(RouterPath("/orgs/:org/\(path)")) { request, context in
                let (name, username) = (try context.parameters.decoded("org"), try context.parameters.decoded("user"))
                return try await act(name, request, context, done: done, errorsAt: { placed($0.detail) }) { form, actor in
                    try await work(portal.services.accounts, name, username, form, actor)
                }
            }
        }
        pages.post("/orgs/:org/invites") { request, context in
            let name = try context.parameters.decoded("org")
            var request = request
            let session = try await portal.requireSession(of: request)
            let form = try await portal.form(of: &request, expecting: try portal.csrf().token(for: session))
            let actor = AdministrativeActor(user: session.user, context: portal.auditContext(request, context))
            do {
                let (_, code) = try await portal.services.accounts.createInvitation(
                    organization: name, role: try Self.role(form), lifetime: Invitation.defaultLifetime, by: actor)
                // The code is shown on this answer only, never in a URL the browser keeps.
                return try await page(name, session, newCode: code)
            } catch let error as BrokerError where !error.code.isServerFailure && Portal.shownOnManagerPages(error) {
                return try await page(
                    name, session, errors: OrganizationFormErrors(invitations: error.detail), status: .init(code: error.code.httpStatus))
            }
        }
        pages.post("/orgs/:org/invites/:id/revoke") { request, context in
            let (name, id) = (try context.parameters.decoded("org"), try context.parameters.decoded("id"))
            return try await act(name, request, context, done: .invitationRevoked, errorsAt: { OrganizationFormErrors(invitations: $0.detail) }) {
                _, actor in
                try await portal.services.accounts.revokeInvitation(id: id, by: actor)
            }
        }
        pages.post("/orgs/:org/policy") { request, context in
            let name = try context.parameters.decoded("org")
            return try await act(name, request, context, done: .policySaved, errorsAt: { OrganizationFormErrors(policy: $0.detail) }) {
                form, actor in
                try await portal.services.accounts.setTokenPolicy(
                    organization: name, to: try Self.policy(form),
                    brokerAccessLifetime: portal.services.configuration.accessLifetime, by: actor)
            }
        }
    }

    /// The role a form chose.
    static func role(_ form: URLEncodedForm) throws -> Role {
        guard let text = form.parameters["role"], let role = Role(rawValue: text) else {
            throw BrokerError(.invalidRequest, "choose a role: member, owner or admin")
        }
        return role
    }

    /// The policy form: empty fields are the broker's defaults; audiences are comma-separated.
    static func policy(_ form: URLEncodedForm) throws -> OrganizationTokenPolicy {
        let lifetimeText = (form.parameters["access_lifetime"] ?? "").trimmingCharacters(in: .whitespaces)
        var lifetime: Int?
        if !lifetimeText.isEmpty {
            guard let value = Int(lifetimeText) else {
                throw BrokerError(.invalidRequest, "the access token lifetime must be a whole number of seconds")
            }
            lifetime = value
        }
        let audiences = (form.parameters["audiences"] ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return OrganizationTokenPolicy(accessLifetime: lifetime, audiences: audiences.isEmpty ? nil : audiences)
    }

    func page(
        _ name: String, _ session: PortalSession, notice: String? = nil, errors: OrganizationFormErrors = OrganizationFormErrors(),
        status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], newCode: String? = nil
    ) async throws -> Response {
        let overview = try await OrganizationOverview.read(name, by: session.actor, in: portal.services.store)
        let invitations = try await portal.services.accounts.invitations(organization: overview.organization.name, by: session.actor)
        let snippet = ConnectSnippet(
            issuer: portal.services.configuration.issuer, organization: overview.organization.name,
            cluster: overview.organization.clusterName, username: session.user.username)
        let view = OrganizationView(
            chrome: try portal.chrome(overview.organization.name, session: session, notice: notice),
            formCSRF: try portal.csrf().token(for: session), overview: overview, snippet: snippet,
            brokerAccessLifetime: portal.services.configuration.accessLifetime, invitations: invitations,
            now: portal.services.clock.now(), newCode: newCode, issuer: portal.services.configuration.issuer, errors: errors)
        return portal.renderer.page("organization", view, status: status, headers: headers)
    }

    /// One manager's form: 303 back to the page, or the page again with the refusal (403 and
    /// 404 are the error pages).
    private func act(
        _ name: String, _ request: Request, _ context: BrokerRequestContext, done: Notice,
        errorsAt place: (BrokerError) -> OrganizationFormErrors, _ work: (URLEncodedForm, AdministrativeActor) async throws -> Void
    ) async throws -> Response {
        try await portal.submit(
            request, context, redirect: "/orgs/\(PortalPaths.segment(name))?notice=\(done.rawValue)",
            refusalsOnPage: Portal.shownOnManagerPages, work
        ) { session, error in
            try await page(
                name, session, errors: place(error), status: .init(code: error.code.httpStatus), headers: Portal.refusalHeaders(error))
        }
    }
}
