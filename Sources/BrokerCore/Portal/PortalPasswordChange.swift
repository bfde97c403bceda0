import Foundation

extension BrokerSessionService {
    /// A signed-in browser changes its account's password: the current one is checked like a
    /// login (the same throttle counters and failure floor: a guess here is a guess), the new one
    /// set (``AccountAdministration/changeOwnPassword(to:by:verified:)``, which ends every
    /// session), and the browser goes on in a new session, audited as `session.login` with
    /// reason `password_change`.
    /// - Throws: 401 `invalid_credentials` for a wrong current password; 429 when throttled;
    ///   400 `invalid_password` when the new one fails the policy.
    public func portalPasswordChange(
        of session: PortalSession, current: String, new password: String, accounts: AccountAdministration,
        portal: PortalSessions, origin: SessionOrigin?, context: AuditContext
    ) async throws -> PortalSessionStart {
        let actor = AdministrativeActor(user: session.user, context: context)
        let user = try await accounts.changeOwnPassword(to: password, by: actor) {
            try await authenticator.authenticate(username: session.user.username, password: current, clientIP: context.clientIP)
        }
        return try await flows.run(
            .sessionLogin, context, attempt: AuditSubject(actor: user.username, target: user.username, reason: "password_change")
        ) {
            try await portal.start(for: user, methods: [.password], origin: origin)
        } success: { started in
            started.auditSubject(reason: "password_change")
        }
    }
}
