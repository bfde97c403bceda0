import BrokerCrypto
import Foundation
import Logging

/// Everything a running broker (or one CLI command) works with, assembled once from the
/// configuration, a store and the key ring.
///
/// Building the services has no side effect: no store access, no file. ``start()`` does the
/// start-up work, once, before the services are used; a service that needs what start-up loads
/// throws ``ServicesNotStarted`` until then.
///
/// ```swift
/// let services = try await BrokerServices(configuration: config, store: store, keyRing: ring)
/// try await services.start()
/// let bundle = try await services.orgTokens.login(username: "alice", password: pw, organization: "org1")
/// ```
public struct BrokerServices: Sendable {
    public let configuration: BrokerConfiguration
    public let store: any Store
    public let keyRing: KeyRing
    public let clock: any WallClock
    public let logger: Logger
    public let passwords: PasswordHashingPool
    public let issuer: TokenIssuer
    public let verifier: TokenVerifier
    public let orgTokens: OrgTokenService
    public let accounts: AccountAdministration
    public let keyPolicy: KeyLifecyclePolicy
    /// Counts failed password logins and refuses attempts over the limits (429).
    public let loginThrottle: LoginThrottle
    /// Whose `X-Forwarded-For` names the client IP.
    public let trustedProxies: TrustedProxies
    /// GitHub logins; `nil` when the broker runs without a GitHub client.
    public let github: GitHubLoginService?
    /// Broker session tokens (admin and membership API).
    public let sessions: BrokerSessionService
    public let introspection: TokenIntrospection
    /// Who may send the generation-1 client's scaling calls on to the provisioner.
    public let scaling: ClusterScaling
    public let keys: KeyAdministration
    /// Where the key ring and the server secrets live (files and the store, or sealed in the database).
    public let keyStorage: any KeyRingStorage
    /// The audit trail: one `record` call per event.
    public let audit: AuditTrail
    /// How audit lines name the username a login attempt typed (unknown names only hashed).
    public let attemptedUsernames: AttemptedUsernames
    /// The audit of logins, renewals and sign-outs, which the services write themselves.
    public let flows: FlowAudit
    /// The portal's browser sessions.
    public let portalSessions: PortalSessions
    /// The portal's sign-up page.
    public let portalSignUp: PortalSignUp
    /// The server secret the portal derives its CSRF key from (``start()`` loads it).
    public let portalKey = StartupValue<[UInt8]>(PortalSessions.secretName)
    /// What ``start()`` loads from the store.
    private let refreshSecret = StartupValue<[UInt8]>(RefreshTokenRotation.secretName)
    private let attemptedUsernameKey = StartupValue<[UInt8]>(AttemptedUsernames.secretName)

    /// Assembles the services; touches neither the store nor any file (see ``start()``).
    public init(
        configuration: BrokerConfiguration, store: any Store, keyRing: KeyRing,
        clock: any WallClock = SystemWallClock(), logger: Logger = Logger(label: "broker"),
        githubAPI: (any GitHubAPI)? = nil, auditSink: (any AuditSink)? = nil,
        keyStorage: (any KeyRingStorage)? = nil
    ) async throws {
        let keyStorage = keyStorage ?? KeyDirectory(path: configuration.keysDirectory, clock: clock, logger: logger)
        self.keyStorage = keyStorage
        self.configuration = configuration
        self.store = store
        self.keyRing = keyRing
        self.clock = clock
        self.logger = logger
        audit = AuditTrail(
            sink: auditSink ?? FileAuditSink(path: configuration.auditLogPath),
            failureMode: configuration.auditFailureMode, clock: clock, logger: logger)
        attemptedUsernames = AttemptedUsernames(store: store, key: attemptedUsernameKey)
        let flows = FlowAudit(trail: audit, attemptedUsernames: attemptedUsernames)
        self.flows = flows
        keyPolicy = KeyLifecyclePolicy(configuration)
        // Replicas on one store count as one: a limit never multiplies by their number.
        let counting = ThrottleCounting(for: store)
        loginThrottle = LoginThrottle(policy: LoginThrottlePolicy(configuration), clock: clock, counting: counting)
        trustedProxies = try TrustedProxies(configuration.trustedProxies)
        passwords = PasswordHashingPool(
            hasher: PasswordHasher(parameters: configuration.argon2),
            concurrency: configuration.passwordHashConcurrency)
        issuer = TokenIssuer(
            keyRing: keyRing, issuer: configuration.issuer, algorithm: configuration.signingAlgorithm, clock: clock,
            signedLifetimes: SignedLifetimeLog(store: store))
        verifier = TokenVerifier(
            keyRing: keyRing, issuer: configuration.issuer, leeway: configuration.clockSkew, clock: clock)
        let rotation = RefreshTokenRotation(
            secret: refreshSecret, policy: SessionPolicy(configuration))
        let resolver = githubAPI.map {
            GitHubIdentityResolver(
                api: $0, mappings: configuration.githubOrganizations, clock: clock,
                identityTTL: configuration.githubIdentityTTL, rejectionTTL: configuration.githubRejectionTTL)
        }
        let authenticator = PasswordAuthenticator(
            store: store, pool: passwords, throttle: loginThrottle,
            failureFloor: .milliseconds(configuration.loginFailureFloorMilliseconds), logger: logger)
        orgTokens = OrgTokenService(
            store: store,
            authenticator: authenticator,
            issuer: issuer, verifier: verifier, rotation: rotation,
            refreshThrottle: SessionRefreshThrottle(
                policy: SessionRefreshThrottlePolicy(configuration), clock: clock, counting: counting),
            clock: clock, logger: logger, flows: flows, slideRuleClient: configuration.slideRuleClientID,
            githubIdentities: resolver)
        accounts = AccountAdministration(store: store, pool: passwords, clock: clock, audit: audit)
        github = resolver.map { [orgTokens, issuer, verifier] resolver in
            GitHubLoginService(
                store: store, resolver: resolver, issuer: issuer, verifier: verifier, orgTokens: orgTokens, clock: clock,
                logger: logger, generation2Lifetime: configuration.generation2AccessLifetime,
                sessionMaxLifetime: configuration.sessionMaxLifetime, homeOrganization: configuration.homeOrganization,
                flows: flows, deviceFlowEnabled: !configuration.githubClientID.isEmpty,
                loginThrottle: GitHubLoginThrottle(
                    policy: GitHubLoginThrottlePolicy(configuration), clock: clock, counting: counting))
        }
        portalSessions = PortalSessions(store: store, clock: clock, policy: PortalSessionPolicy(configuration), flows: flows)
        portalSignUp = PortalSignUp(
            mode: configuration.portalSignup, accounts: accounts,
            throttle: AddressThrottle(
                policy: .signUps(configuration), clock: clock, counting: counting, purpose: .signUps),
            portal: portalSessions, flows: flows, github: github)
        sessions = BrokerSessionService(
            store: store, authenticator: authenticator, issuer: issuer, verifier: verifier, github: github, clock: clock,
            lifetime: configuration.adminSessionLifetime, logger: logger, flows: flows)
        introspection = TokenIntrospection(
            store: store, verifier: verifier, clock: clock, flows: flows,
            githubMappedOrganizations: Set(configuration.githubOrganizations.map(\.organization)))
        scaling = ClusterScaling(
            tokens: PresentedTokens(store: store, verifier: verifier, clock: clock), trail: audit,
            githubMappedOrganizations: Set(configuration.githubOrganizations.map(\.organization)))
        keys = KeyAdministration(
            storage: keyStorage, ring: keyRing,
            algorithm: configuration.signingAlgorithm, policy: keyPolicy, audit: audit)
    }

    /// The start-up work, in this order, each step idempotent (every replica and every restart
    /// runs it):
    /// 1. the server secrets every process on this store shares, created on the first start:
    ///    the refresh-successor HMAC key, the key that hashes unknown usernames in audit lines and
    ///    the portal's key (CSRF tokens);
    /// 2. with GitHub logins, the check of `github_orgs` against the store, recording each team
    ///    cluster as its organization's name (a conflict stops the start);
    /// 3. the bootstrap admin of an empty store (`bootstrap_admin`), audited as the operator's.
    ///
    /// - Throws: a store error, or a ``ConfigurationError`` that must stop the start.
    public func start() async throws {
        // Sealed beside the ring when it lives in the database; the store's table otherwise.
        refreshSecret.set(try await RefreshTokenRotation.loadSecret(from: store, beside: keyStorage))
        attemptedUsernameKey.set(try await keyStorage.serverSecret(named: AttemptedUsernames.secretName, store: store))
        portalKey.set(try await keyStorage.serverSecret(named: PortalSessions.secretName, store: store))
        if github != nil {
            try await accounts.registerTeamClusters(configuration.githubOrganizations)
        }
        try await AdminBootstrap(configuration).apply(using: accounts, logger: logger)
    }

    /// Whether ``start()`` has run.
    public var isStarted: Bool { refreshSecret.isLoaded && attemptedUsernameKey.isLoaded && portalKey.isLoaded }

    /// What these signing keys signed, as the store records it (see ``SignedLifetimeLog``): what
    /// ``KeyRingMaintenance`` needs to unpublish a retired key as soon as its tokens are invalid.
    public func signedLifetimes(kids: [String]) async throws -> SignedLifetimes {
        try await SignedLifetimes.read(kids: kids, from: store, clock: clock)
    }

    /// Deletes what the store no longer needs (see ``StoragePruner``).
    public var pruner: StoragePruner {
        StoragePruner(
            store: store, clock: clock, leeway: configuration.clockSkew, batchSize: configuration.pruneBatchSize,
            logger: logger)
    }

    /// Stops the hashing threads, closes the audit log and the store.
    public func shutdown() async throws {
        try await passwords.shutdown()
        await audit.close()
        try await store.close()
    }
}
