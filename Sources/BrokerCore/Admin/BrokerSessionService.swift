import Foundation
import Logging

/// Broker session tokens: JWTs whose `aud` is the broker's own issuer URL, obtained by signing in
/// without naming an organization. They authenticate the admin and membership API, carry the
/// holder's global role in `role`, and are never accepted by a cluster gateway (no cluster is
/// named like a URL). Each sign-in is recorded as a session (`sid`); every request re-reads the
/// account and the session (``PresentedTokens``), so disabling the account, withdrawing its
/// role, revoking the token or signing the holder out everywhere takes effect at once, not when
/// the token expires.
///
/// ```swift
/// let session = try await sessions.signIn(username: "root", password: pw, context: AuditContext(clientIP: "10.0.0.7"))
/// let principal = try await sessions.authenticate(bearer: session.token)
/// ```
public struct BrokerSessionService: Sendable {
    public let store: any Store
    public let authenticator: PasswordAuthenticator
    public let issuer: TokenIssuer
    public let verifier: TokenVerifier
    public let github: GitHubLoginService?
    public let clock: any WallClock
    public let lifetime: Int
    public let logger: Logger
    /// Where sign-ins are recorded (`session.login`).
    public let flows: FlowAudit

    public init(
        store: any Store, authenticator: PasswordAuthenticator, issuer: TokenIssuer, verifier: TokenVerifier,
        github: GitHubLoginService?, clock: any WallClock, lifetime: Int, logger: Logger, flows: FlowAudit
    ) {
        self.flows = flows
        self.store = store
        self.authenticator = authenticator
        self.issuer = issuer
        self.verifier = verifier
        self.github = github
        self.clock = clock
        self.lifetime = lifetime
        self.logger = logger
    }

    /// A signed session token and whom it names.
    public struct SessionToken: Sendable {
        public var token: String
        public var claims: AccessTokenClaims
        public var user: User
        public var expiresIn: Int
    }

    /// The verified holder of a session token.
    public struct Principal: Sendable {
        /// The account as stored now (not as it was when the token was issued).
        public var user: User
        public var claims: AccessTokenClaims

        public var actor: AdministrativeActor { AdministrativeActor(user: user) }

        /// - Throws: 403 ``ErrorCode/forbidden`` unless the holder's global role allows
        ///   introspection (`admin` or `introspector`).
        public func requireIntrospection() throws {
            guard user.globalRole != nil else {
                throw BrokerError(.forbidden, "introspection needs the global role admin or introspector")
            }
        }
    }

    /// Signs in with a password; audited as `session.login`, reason `pwd` on a refusal.
    public func signIn(username: String, password: String, context: AuditContext = .none) async throws -> SessionToken {
        try await flows.run(.sessionLogin, context, attempt: .attempt(username: username, reason: AuthenticationMethod.password.rawValue)) {
            try await BrokerMetrics.countingLogin(.session) {
                let user = try await authenticator.authenticate(username: username, password: password, clientIP: context.clientIP)
                return try await issue(for: user, methods: [.password], identityProvider: "local")
            }
        } success: { $0.auditSubject }
    }

    /// Signs in with a GitHub token: the linked account, or the account of a GitHub user an
    /// organization mapping admits. Audited as `session.login`, reason `github` on a refusal.
    public func signIn(githubToken: String, context: AuditContext = .none) async throws -> SessionToken {
        try await flows.run(
            .sessionLogin, context, attempt: AuditSubject(target: AuditEvent.tokenReference(githubToken), reason: "github")
        ) {
            let (identity, holder) = try await githubHolder(githubToken, clientIP: context.clientIP, throttled: true)
            return try await issue(for: holder.user, methods: [.github], identityProvider: "github", githubLogin: identity.login)
        } success: { $0.auditSubject }
    }

    /// Signs a browser in to the portal with a GitHub token: the same account rule and audit
    /// line as ``signIn(githubToken:context:)``, ending in a portal session. `throttled` is false
    /// only for a token GitHub has just handed out at the end of a device flow whose polls were
    /// counted (refusing it then would lose it).
    public func portalSignIn(
        githubToken: String, throttled: Bool, portal: PortalSessions, origin: SessionOrigin?, context: AuditContext
    ) async throws -> PortalSessionStart {
        try await flows.run(
            .sessionLogin, context, attempt: AuditSubject(target: AuditEvent.tokenReference(githubToken), reason: "github")
        ) {
            try await BrokerMetrics.countingLogin(.portal) {
                let (_, holder) = try await githubHolder(githubToken, clientIP: context.clientIP, throttled: throttled)
                return try await portal.start(for: holder.user, methods: [.github], origin: origin)
            }
        } success: { started in
            started.auditSubject(reason: "github")
        }
    }

    /// Who a GitHub token is, and the broker account that holds it (created when an
    /// organization mapping admits the GitHub user).
    private func githubHolder(
        _ githubToken: String, clientIP: String?, throttled: Bool
    ) async throws -> (GitHubIdentity, GitHubLoginService.Holder) {
        guard let github else {
            throw BrokerError(.githubUnavailable, "this broker has no GitHub client")
        }
        if throttled { try await github.loginThrottle.admit(clientIP: clientIP) }
        let identity = try await github.resolver.identity(for: githubToken)
        return (identity, try await github.holder(for: identity, createAccount: true, requireAny: false))
    }

    /// Signs a browser in to the portal with a password: the same check, throttle and audit line
    /// (`session.login`; `target` names the cookie by its hash, `reason` the global role) as
    /// ``signIn(username:password:context:)``, ending in a portal session instead of a token.
    public func portalSignIn(
        username: String, password: String, portal: PortalSessions, origin: SessionOrigin?, context: AuditContext = .none
    ) async throws -> PortalSessionStart {
        try await flows.run(.sessionLogin, context, attempt: .attempt(username: username, reason: AuthenticationMethod.password.rawValue)) {
            try await BrokerMetrics.countingLogin(.portal) {
                let user = try await authenticator.authenticate(username: username, password: password, clientIP: context.clientIP)
                return try await portal.start(for: user, methods: [.password], origin: origin)
            }
        } success: { started in
            started.auditSubject(reason: started.session.user.globalRole.map { "role=\($0.rawValue)" })
        }
    }

    private func issue(
        for user: User, methods: [AuthenticationMethod], identityProvider: String, githubLogin: String? = nil
    ) async throws -> SessionToken {
        let now = clock.now()
        // The session ends with its one token: a broker session token is never renewed.
        let session = try await PresentedTokens.startSession(
            in: store, for: user, scope: .broker, methods: methods, client: .broker, authenticatedAt: now,
            expiresAt: now.addingTimeInterval(TimeInterval(lifetime)))
        var grant = TokenIssuer.Grant.brokerSession(
            user: user, issuer: verifier.issuer, authenticatedAt: now, authenticationMethods: methods.map(\.rawValue),
            identityProvider: identityProvider, githubLogin: githubLogin)
        grant.sessionID = session.id
        let issued = try await issuer.issue(grant, lifetime: lifetime)
        BrokerMetrics.tokenIssued(.session)
        logger.info(
            "broker session", metadata: ["user": "\(user.username)", "jti": "\(issued.claims.tokenID)"])
        return SessionToken(token: issued.token, claims: issued.claims, user: user, expiresIn: lifetime)
    }

    /// Verifies a session token and loads its holder.
    /// - Throws: 401 ``ErrorCode/invalidToken`` for a bad, expired, revoked or non-session token
    ///   or an ended session; 401 ``ErrorCode/accountDisabled`` when the account is disabled or gone.
    public func authenticate(bearer token: String) async throws -> Principal {
        let presented: PresentedTokens.Accepted
        do {
            presented = try await PresentedTokens(store: store, verifier: verifier, clock: clock)
                .accept(token, audience: verifier.issuer)
        } catch let error as BrokerError where error.code == .invalidToken {
            throw BrokerError(.invalidToken, "not a valid broker session token: \(error.detail)")
        }
        return Principal(user: presented.user, claims: presented.claims)
    }
}
