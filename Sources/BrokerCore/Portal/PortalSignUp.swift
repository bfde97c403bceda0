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

    /// Whether anyone may sign up (`open`); in `invite` mode only holders of an invitation may.
    public var isOpen: Bool { mode == .open }
    /// Whether a sign-up with an invitation is taken (`open` and `invite`).
    public var takesInvitations: Bool { mode != .closed }

    /// Why a sign-up without an invitation is refused, in the words of the mode.
    private var refusal: BrokerError {
        mode == .invite
            ? BrokerError(.forbidden, "this broker takes sign-ups with an invitation only; ask an organization's owner for one")
            : BrokerError(.forbidden, "this broker does not take sign-ups; ask an administrator for an account")
    }

    /// Creates the account and signs the browser in (a `session.login` line, reason `signup`).
    /// With an `invitation` (the code as typed; blank counts as none), the account is created and
    /// the invitation used in one transaction, an organization's granting its membership (see
    /// ``AccountAdministration/signUp(username:password:invitation:context:)``).
    /// - Throws: 403 when sign-up is closed, or in `invite` mode without an invitation; 429 over
    ///   the throttle; 400 `invalid_username`, `invalid_password` or an invitation that is not
    ///   valid; 409 when the name (or one confusable with it) is taken.
    public func signUp(
        username: String, password: String, invitation: String? = nil, origin: SessionOrigin?, context: AuditContext
    ) async throws -> PortalSessionStart {
        let code = invitation.flatMap { InvitationCode.normalized($0).isEmpty ? nil : $0 }
        guard isOpen || (takesInvitations && code != nil) else { throw refusal }
        try await throttle.admit(clientIP: context.clientIP)
        let user = try await accounts.signUp(username: username, password: password, invitation: code, context: context)
        return try await flows.run(.sessionLogin, context, attempt: AuditSubject(actor: user.username, reason: "signup")) {
            try await portal.start(for: user, methods: [.password], origin: origin)
        } success: { started in
            started.auditSubject(reason: "signup")
        }
    }

    /// Admits one sign-up attempt with GitHub before its device flow starts (the flow's polls
    /// count against the GitHub login throttle).
    /// - Throws: 403 when sign-up is closed; 429 over the throttle.
    public func admitGitHubSignUp(context: AuditContext) async throws {
        guard isOpen else { throw refusal }
        try await throttle.admit(clientIP: context.clientIP)
    }

    /// Ends a sign-up with GitHub whose device flow GitHub approved: an account linked to the
    /// GitHub user (its id and login), named after the login, with no password, and the
    /// browser's first session. A GitHub user who has an account already is signed in to it.
    /// Audited as `user.create` by `signup`, reason `signup github`, when an account was made,
    /// and `session.login`, reason `signup github`.
    public func signUp(githubToken: String, origin: SessionOrigin?, context: AuditContext) async throws -> PortalSessionStart {
        guard isOpen else { throw refusal }
        guard let github else { throw BrokerError(.githubUnavailable, "this broker has no GitHub client") }
        return try await flows.run(
            .sessionLogin, context, attempt: AuditSubject(target: AuditEvent.tokenReference(githubToken), reason: "signup github")
        ) {
            let identity = try await github.resolver.identity(for: githubToken)
            let holder = try await github.holder(for: identity, createAccount: true, requireAny: false, admitNewcomer: true)
            if holder.isNewAccount {
                try await accounts.audit.record(
                    .userCreate, .success, actor: "signup", target: holder.user.username, reason: "signup github", context: context)
            }
            return try await portal.start(for: holder.user, methods: [.github], origin: origin)
        } success: { started in
            started.auditSubject(reason: "signup github")
        }
    }
}
