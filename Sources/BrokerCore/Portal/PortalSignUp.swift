import Foundation

/// The portal's sign-up page: whether it is open (`portal_signup`), the per-address throttle
/// (`portal_signup_throttle_ip`, every attempt counts), then the account, created by the rules
/// every account is created by, and the new holder's first portal session.
///
/// ```swift
/// let started = try await services.portalSignUp.signUp(username: "carol", password: pw, origin: origin, context: context)
/// ```
public struct PortalSignUp: Sendable {
    public let mode: PortalSignupMode
    public let accounts: AccountAdministration
    public let throttle: AddressThrottle
    public let portal: PortalSessions
    public let flows: FlowAudit

    public init(
        mode: PortalSignupMode, accounts: AccountAdministration, throttle: AddressThrottle, portal: PortalSessions, flows: FlowAudit
    ) {
        self.mode = mode
        self.accounts = accounts
        self.throttle = throttle
        self.portal = portal
        self.flows = flows
    }

    public var isOpen: Bool { mode == .open }

    /// Creates the account and signs the browser in (a `session.login` line, reason `signup`).
    /// - Throws: 403 when sign-up is closed; 429 over the throttle; 400 `invalid_username` or
    ///   `invalid_password`; 409 when the name (or one confusable with it) is taken.
    public func signUp(
        username: String, password: String, origin: SessionOrigin?, context: AuditContext
    ) async throws -> PortalSessionStart {
        guard isOpen else { throw BrokerError(.forbidden, "this broker does not take sign-ups; ask an administrator for an account") }
        try await throttle.admit(clientIP: context.clientIP)
        let user = try await accounts.signUp(username: username, password: password, context: context)
        return try await flows.run(.sessionLogin, context, attempt: AuditSubject(actor: user.username, reason: "signup")) {
            try await portal.start(for: user, methods: ["pwd"], origin: origin)
        } success: { started in
            AuditSubject(
                actor: user.username, session: started.session.family.id, target: AuditEvent.tokenReference(started.cookie),
                reason: "signup")
        }
    }
}
