import BrokerCrypto
import Foundation

/// Signs access tokens with the active key of the configured algorithm. Every token of every
/// family passes here: the key's signed lifetime is recorded (``SignedLifetimeLog``) before it
/// signs, which keeps the key published as long as the token can be valid.
///
/// ```swift
/// let issuer = TokenIssuer(
///     keyRing: ring, issuer: "https://login.example.org", algorithm: .rs256, clock: SystemWallClock(),
///     signedLifetimes: SignedLifetimeLog(store: store))
/// let token = try await issuer.issue(grant, lifetime: 3600)
/// ```
public struct TokenIssuer: Sendable {
    public let keyRing: KeyRing
    public let issuer: String
    public let algorithm: JWSAlgorithm
    public let clock: any WallClock
    public let signedLifetimes: SignedLifetimeLog

    public init(
        keyRing: KeyRing, issuer: String, algorithm: JWSAlgorithm, clock: any WallClock, signedLifetimes: SignedLifetimeLog
    ) {
        self.signedLifetimes = signedLifetimes
        self.keyRing = keyRing
        self.issuer = issuer
        self.algorithm = algorithm
        self.clock = clock
    }

    /// A signed token and the claims it carries.
    public struct IssuedToken: Sendable {
        public var token: String
        public var claims: AccessTokenClaims
        public var kid: String
    }

    /// What a token says about its holder; the issuer adds `iss`, times and `jti`.
    public struct Grant: Sendable {
        /// `sub` is always this account's username, unique among accounts: two people never
        /// share a `sub` (a GitHub login may equal another account's username).
        public var user: User
        /// `github_login`, for display, when the holder logged in with GitHub.
        public var githubLogin: String?
        public var audience: [String]
        public var organization: String
        public var organizationRoles: [String]
        public var memberships: [String: [String]]?
        /// `cluster_roles` of a multi-cluster token: the roles at each cluster in `audience`.
        public var clusterRoles: [String: [String]]?
        public var authenticatedAt: Date
        public var authenticationMethods: [String]
        public var identityProvider: String
        /// The organization policy's lifetime, if shorter than the caller's.
        public var lifetimeCap: Int?
        public var sessionID: String?
        public var globalRole: GlobalRole?
        /// `client_id`: the client of the session the token belongs to.
        public var client: ClientID

        public init(
            user: User, githubLogin: String? = nil, audience: [String], organization: String, organizationRoles: [String],
            memberships: [String: [String]]?, clusterRoles: [String: [String]]?, authenticatedAt: Date,
            authenticationMethods: [String], identityProvider: String, client: ClientID, lifetimeCap: Int? = nil,
            sessionID: String? = nil, globalRole: GlobalRole? = nil
        ) {
            self.client = client
            self.clusterRoles = clusterRoles
            self.lifetimeCap = lifetimeCap
            self.sessionID = sessionID
            self.globalRole = globalRole
            self.user = user
            self.githubLogin = githubLogin
            self.audience = audience
            self.organization = organization
            self.organizationRoles = organizationRoles
            self.memberships = memberships
            self.authenticatedAt = authenticatedAt
            self.authenticationMethods = authenticationMethods
            self.identityProvider = identityProvider
        }

        /// A token for one organization (generation 1): its cluster is the audience.
        public static func organization(
            user: User, organization: Organization, role: Role, authenticatedAt: Date, authenticationMethods: [String],
            identityProvider: String, client: ClientID, githubLogin: String? = nil, sessionID: String? = nil
        ) -> Grant {
            Grant(
                user: user, githubLogin: githubLogin, audience: organization.tokenAudience,
                organization: organization.name, organizationRoles: role.impliedRoles, memberships: nil, clusterRoles: nil,
                authenticatedAt: authenticatedAt, authenticationMethods: authenticationMethods,
                identityProvider: identityProvider, client: client, lifetimeCap: organization.tokenPolicy.accessLifetime,
                sessionID: sessionID)
        }

        /// A broker session token: `aud` is the broker itself, no organization; it authenticates
        /// the admin and membership API and carries the holder's global role. Its client is the
        /// broker itself.
        public static func brokerSession(
            user: User, issuer: String, authenticatedAt: Date, authenticationMethods: [String], identityProvider: String,
            githubLogin: String? = nil
        ) -> Grant {
            Grant(
                user: user, githubLogin: githubLogin, audience: [issuer], organization: "",
                organizationRoles: [], memberships: nil, clusterRoles: nil, authenticatedAt: authenticatedAt,
                authenticationMethods: authenticationMethods, identityProvider: identityProvider, client: .broker,
                globalRole: user.globalRole)
        }
    }

    /// - Parameter lifetime: seconds; the grant's ``Grant/lifetimeCap`` shortens it.
    public func issue(_ grant: Grant, lifetime: Int) async throws -> IssuedToken {
        let lifetime = min(lifetime, grant.lifetimeCap ?? lifetime)
        var active = try activeSigner()
        // Recorded before it signs; if the ring changed meanwhile, the new active key signs instead.
        while true {
            try await signedLifetimes.willSign(kid: active.kid, lifetime: lifetime)
            let current = try activeSigner()
            if current.kid == active.kid { break }
            active = current
        }
        let now = Int64(clock.now().timeIntervalSince1970.rounded(.down))
        let claims = AccessTokenClaims(
            issuer: issuer,
            subject: grant.user.username,
            audience: grant.audience,
            organization: grant.organization,
            organizationRoles: grant.organizationRoles,
            issuedAt: now,
            notBefore: now,
            expiresAt: now + Int64(lifetime),
            tokenID: Base64URL.encode(SecureRandom.identifierBytes(16)),
            authenticatedAt: Int64(grant.authenticatedAt.timeIntervalSince1970.rounded(.down)),
            authenticationMethods: grant.authenticationMethods,
            identityProvider: grant.identityProvider,
            userID: grant.user.id,
            username: grant.user.username,
            memberships: grant.memberships, clusterRoles: grant.clusterRoles, sessionID: grant.sessionID,
            globalRole: grant.globalRole?.rawValue, githubLogin: grant.githubLogin, clientID: grant.client.rawValue)
        let token = try active.signer.sign(payload: claims.encoded())
        return IssuedToken(token: token, claims: claims, kid: active.kid)
    }

    private func activeSigner() throws -> KeyRingSnapshot.ActiveSigner {
        guard let active = keyRing.snapshot.activeSigner(for: algorithm) else {
            throw BrokerError(.unavailable, "no active \(algorithm.rawValue) signing key")
        }
        return active
    }
}
