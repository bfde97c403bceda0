import Foundation
import Logging

/// A generation-1 token bundle: an access token for one organization and a refresh token.
public struct TokenBundle: Sendable {
    public var access: String
    public var refresh: String
    public var accessLifetime: Int
    public var refreshLifetime: Int
    public var accessExpiresAt: Date
    public var claims: AccessTokenClaims
}

/// The organization-scoped token flows of generation 1: password login, refresh with rotation
/// and reuse detection, logout (blacklist) and membership status. Logins, renewals and logouts
/// write their audit line themselves (``FlowAudit``), whoever calls them.
///
/// ```swift
/// let origin = AuditContext(requestID: "r-1", clientIP: "192.0.2.7")
/// let bundle = try await service.login(username: "alice", password: pw, organization: "org1", context: origin)
/// let next = try await service.refresh(bundle.refresh, context: origin)
/// ```
public struct OrgTokenService: Sendable {
    public let store: any Store
    public let authenticator: PasswordAuthenticator
    public let issuer: TokenIssuer
    public let verifier: TokenVerifier
    public let rotation: RefreshTokenRotation
    public let clock: any WallClock
    public let logger: Logger
    /// Recent GitHub answers, for refreshing sessions whose membership a GitHub mapping grants.
    public let githubIdentities: GitHubIdentityResolver?
    /// Renewals per session (429 over the limit), shared by every renewal route.
    public let refreshThrottle: SessionRefreshThrottle
    /// Where logins, renewals and logouts are recorded.
    public let flows: FlowAudit
    /// The `client_id` of sessions started through the SlideRule protocols (`sliderule_client_id`).
    public let slideRuleClient: ClientID

    public init(
        store: any Store, authenticator: PasswordAuthenticator, issuer: TokenIssuer, verifier: TokenVerifier,
        rotation: RefreshTokenRotation, refreshThrottle: SessionRefreshThrottle, clock: any WallClock, logger: Logger,
        flows: FlowAudit, slideRuleClient: ClientID, githubIdentities: GitHubIdentityResolver? = nil
    ) {
        self.slideRuleClient = slideRuleClient
        self.flows = flows
        self.refreshThrottle = refreshThrottle
        self.githubIdentities = githubIdentities
        self.store = store
        self.authenticator = authenticator
        self.issuer = issuer
        self.verifier = verifier
        self.rotation = rotation
        self.clock = clock
        self.logger = logger
    }

    var policy: SessionPolicy { rotation.policy }

    /// A password login for one organization, audited as `login.password`.
    /// - Parameter context: the request (its id; the client IP, which the login throttle counts).
    public func login(
        username: String, password: String, organization organizationName: String, context: AuditContext = .none
    ) async throws -> TokenBundle {
        try await flows.run(.loginPassword, context, attempt: .attempt(username: username, organization: organizationName)) {
            try await BrokerMetrics.countingLogin(.password) {
                try await passwordLogin(
                    username: username, password: password, organization: organizationName, clientIP: context.clientIP)
            }
        } success: { $0.auditSubject }
    }

    private func passwordLogin(
        username: String, password: String, organization organizationName: String, clientIP: String?
    ) async throws -> TokenBundle {
        let user = try await authenticator.authenticate(username: username, password: password, clientIP: clientIP)
        let (organization, role) = try await store.transaction { tx in
            try await OrganizationAccess.requireMembership(of: user, in: organizationName, tx: tx)
        }
        return try await startSession(
            user: user, organization: organization, role: role, methods: [.password], identityProvider: "local",
            client: slideRuleClient)
    }

    /// Starts a refresh family for an authenticated user's membership and returns its first
    /// bundle; the session's tokens are `client`'s.
    public func startSession(
        user: User, organization: Organization, role: Role, methods: [AuthenticationMethod], identityProvider: String,
        client: ClientID, githubLogin: String? = nil
    ) async throws -> TokenBundle {
        let now = clock.now()
        let rotation = self.rotation
        let refresh = try await store.transaction { tx in
            try await rotation.startFamily(
                in: tx, for: user, organizationID: organization.id, methods: methods, client: client, now: now)
        }
        let grant = TokenIssuer.Grant.organization(
            user: user, organization: organization, role: role, authenticatedAt: now,
            authenticationMethods: methods.map(\.rawValue), identityProvider: identityProvider, client: client,
            githubLogin: githubLogin,
            sessionID: refresh.family.id)
        let bundle = try await bundle(for: grant, refresh: refresh.token, refreshExpiresAt: refresh.expiresAt, now: now)
        logger.info(
            "login",
            metadata: [
                "user": "\(user.username)", "org": "\(organization.name)", "idp": "\(identityProvider)",
                "family": "\(refresh.family.id)", "jti": "\(bundle.claims.tokenID)",
            ])
        return bundle
    }

    /// Exchanges a refresh token for a new bundle, audited as `token.refresh` (a reused token:
    /// `refresh.reuse_detected`).
    /// - Parameter client: the client presenting the token, when it says (`/oauth/token`): a
    ///   token issued to another client is refused (RFC 6749 section 6) and stays unused.
    public func refresh(_ presented: String, client: ClientID? = nil, context: AuditContext = .none) async throws -> TokenBundle {
        try await flows.run(.tokenRefresh, context, attempt: AuditSubject(target: AuditEvent.tokenReference(presented))) {
            try await BrokerMetrics.countingRefresh { try await rotateRefreshToken(presented, client: client) }
        } success: { $0.auditSubject }
    }

    private func rotateRefreshToken(_ presented: String, client presenter: ClientID?) async throws -> TokenBundle {
        let slideRuleClient = self.slideRuleClient
        let now = clock.now()
        let (rotation, refreshThrottle) = (self.rotation, self.refreshThrottle)
        // Under the presented token's lock (``RefreshTokenRotation/rotate``), not at SERIALIZABLE:
        // see ``Store/lockingTransaction(_:)``.
        let outcome = try await store.lockingTransaction { tx in
            let read = try await refreshThrottle.admitRenewal(ofTokenHash: RefreshTokenRotation.hash(presented), in: tx)
            return try await rotation.rotate(presented, read: read, in: tx, now: now) { renewal in
                let family = renewal.family
                let client = family.client(slideRule: slideRuleClient)
                if let presenter, presenter != client {
                    throw BrokerError(.invalidRefreshToken, "this refresh token was issued to another client")
                }
                guard let user = renewal.user, user.isActive else {
                    throw BrokerError(.accountDisabled, "this account is disabled")
                }
                // A session of an earlier credential or session version has ended.
                if PresentedTokens.accountRefusal(user, of: family) != nil {
                    throw BrokerError(.invalidRefreshToken, "Token is invalid or expired (session ended)")
                }
                // Only a generation-1 session holds refresh tokens.
                guard family.organizationID != nil else {
                    throw BrokerError(.invalidRefreshToken, "Token is invalid or expired")
                }
                guard let organization = renewal.organization else {
                    throw BrokerError(.unknownOrganization, "the organization of this session no longer exists")
                }
                let viaGitHub = AuthenticationMethod.includesGitHub(family.authenticationMethods)
                let role = try refreshedRole(of: user, in: organization, membership: renewal.membership, viaGitHub: viaGitHub)
                // Last, and only a check: the renewal is counted once it has committed (this body
                // may run more than once), so that only renewals that happened count.
                try refreshThrottle.check(sessionID: family.id)
                return TokenIssuer.Grant.organization(
                    user: user, organization: organization, role: role, authenticatedAt: family.authenticatedAt,
                    authenticationMethods: family.authenticationMethods, identityProvider: viaGitHub ? "github" : "local",
                    client: client, githubLogin: viaGitHub ? user.githubLogin : nil, sessionID: family.id)
            }
        }
        switch outcome {
        case .rejected(let error):
            throw error
        case .reused(let familyID, let session):
            BrokerMetrics.refreshReuseDetected()
            logger.warning("refresh token reuse detected; session revoked", metadata: ["family": "\(familyID)"])
            throw BrokerError(.refreshTokenReused, "Token is invalid or expired (reused; the session has been revoked)")
                .concerning(session)
        case .rotated(let family, let successor, let successorExpiresAt, let grant):
            refreshThrottle.record(sessionID: family.id)
            let bundle = try await bundle(for: grant, refresh: successor, refreshExpiresAt: successorExpiresAt, now: now)
            logger.info("refresh", metadata: ["family": "\(family.id)", "jti": "\(bundle.claims.tokenID)"])
            return bundle
        }
    }

    /// The role a refresh may carry: the store's active membership, or, for a GitHub session in a
    /// GitHub-mapped organization, GitHub's recent answer. When that answer has expired the
    /// holder must log in again (401); when GitHub no longer admits them, 403.
    func refreshedRole(of user: User, in organization: Organization, membership: Membership?, viaGitHub: Bool) throws -> Role {
        if let membership, membership.isActive {
            return membership.role
        }
        guard viaGitHub, let resolver = githubIdentities,
            resolver.mappings.contains(where: { $0.organization == organization.name })
        else {
            throw BrokerError(.notAMember, "\(user.username) has no active membership in \(organization.name)")
        }
        // By id: whoever holds the account's old login now is someone else.
        guard let githubID = user.githubID, let identity = resolver.recentIdentity(githubID: githubID) else {
            throw BrokerError(.invalidRefreshToken, "GitHub must confirm the membership again: log in again")
        }
        guard let grant = identity.grants[organization.name] else {
            throw BrokerError(.notAMember, "GitHub no longer admits \(identity.login) to \(organization.name)")
        }
        return grant.role
    }

    /// Ends the session the refresh token belongs to (generation 1's blacklist) and returns whose
    /// it was; audited as `session.revoke`, reason `logout`.
    @discardableResult
    public func revoke(_ presented: String, context: AuditContext = .none) async throws -> AuditedSession {
        try await flows.run(
            .sessionRevoke, context, attempt: AuditSubject(target: AuditEvent.tokenReference(presented), reason: "logout")
        ) {
            try await endSession(of: presented)
        } success: { session in
            var subject = session.auditSubject
            subject.reason = "logout"
            return subject
        }
    }

    private func endSession(of presented: String) async throws -> AuditedSession {
        let now = clock.now()
        let rotation = self.rotation
        let ended = try await store.transaction { tx -> AuditedSession? in
            guard let family = try await rotation.revokeFamily(of: presented, in: tx, now: now, reason: "logout") else {
                return nil
            }
            return try await AuditedSession.of(family, in: tx)
        }
        guard let ended else { throw BrokerError(.invalidRefreshToken, "Token is invalid or expired") }
        return ended
    }

    /// Whether the holder of `bearer` has an active membership in `organization`.
    /// - Throws: 401 when the token is no longer good (``PresentedTokens``): revoked, its
    ///   session ended, its account disabled.
    public func membershipStatus(bearer: String, organization organizationName: String) async throws -> Bool {
        let presented = try await PresentedTokens(store: store, verifier: verifier, clock: clock).accept(bearer)
        return try await store.read { tx in
            try await OrganizationAccess.currentRole(ofUser: presented.user.id, in: organizationName, tx: tx) != nil
        }
    }

    private func bundle(for grant: TokenIssuer.Grant, refresh: String, refreshExpiresAt: Date, now: Date) async throws -> TokenBundle {
        let issued = try await issuer.issue(grant, lifetime: policy.accessLifetime)
        BrokerMetrics.tokenIssued(.org)
        return TokenBundle(
            access: issued.token, refresh: refresh, accessLifetime: Int(issued.claims.expiresAt - issued.claims.issuedAt),
            refreshLifetime: max(0, Int(refreshExpiresAt.timeIntervalSince(now).rounded(.down))),
            accessExpiresAt: Date(timeIntervalSince1970: TimeInterval(issued.claims.expiresAt)),
            claims: issued.claims)
    }
}
