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
    /// For a sign-up with GitHub; nil without a GitHub client.
    public let github: GitHubLoginService?

    public init(
        mode: PortalSignupMode, accounts: AccountAdministration, throttle: AddressThrottle, portal: PortalSessions, flows: FlowAudit,
        github: GitHubLoginService?
    ) {
        self.github = github
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

    /// Admits one sign-up attempt with GitHub before its device flow starts (the flow's polls
    /// count against the GitHub login throttle).
    /// - Throws: 403 when sign-up is closed; 429 over the throttle.
    public func admitGitHubSignUp(context: AuditContext) async throws {
        guard isOpen else { throw BrokerError(.forbidden, "this broker does not take sign-ups; ask an administrator for an account") }
        try await throttle.admit(clientIP: context.clientIP)
    }

    /// Ends a sign-up with GitHub whose device flow GitHub approved: an account linked to the
    /// GitHub user (its id and login), named after the login, with no password, and the
    /// browser's first session. A GitHub user who has an account already is signed in to it.
    /// Audited as `user.create` by `signup`, reason `signup github`, when an account was made,
    /// and `session.login`, reason `signup github`.
    public func signUp(githubToken: String, origin: SessionOrigin?, context: AuditContext) async throws -> PortalSessionStart {
        guard isOpen else { throw BrokerError(.forbidden, "this broker does not take sign-ups; ask an administrator for an account") }
        guard let github else { throw BrokerError(.githubUnavailable, "this broker has no GitHub client") }
        return try await flows.run(
            .sessionLogin, context, attempt: AuditSubject(target: AuditEvent.tokenReference(githubToken), reason: "signup github")
        ) {
            let identity = try await github.resolver.identity(for: githubToken)
            let existing = try await accounts.store.read { tx -> User? in
                if let user = try await tx.user(githubID: identity.githubID) { return user }
                return try await tx.user(githubLogin: identity.login)
            }
            let holder = try await github.holder(for: identity, createAccount: true, requireAny: false, admitNewcomer: true)
            if existing == nil {
                try await accounts.audit.record(
                    .userCreate, .success, actor: "signup", target: holder.user.username, reason: "signup github", context: context)
            }
            return try await portal.start(for: holder.user, methods: ["github"], origin: origin)
        } success: { started in
            AuditSubject(
                actor: started.session.user.username, session: started.session.family.id,
                target: AuditEvent.tokenReference(started.cookie), reason: "signup github")
        }
    }
}
