import BrokerCrypto
import BrokerSync
import Foundation
import Logging

/// Logins with a GitHub token: generation 2 (`/auth/github/pat`, device flow: one token for
/// every cluster the holder may use) and generation 1 (`/api/org_token_github/`: a bundle for
/// one organization).
///
/// Who gets what: a local account linked to the GitHub user brings exactly its memberships;
/// GitHub-mapped organizations (configuration) add theirs. A GitHub user admitted only through
/// a mapping gets a local account (linked, no password) at first login, so `user_id` is always
/// an integer. The GitHub identity is GitHub's numeric user id, never the login: a link made by
/// login alone records the id at its first verified login, and from then on only that id gets
/// the account (see ``holder(for:createAccount:requireAny:)``). Tokens name the account in `sub`
/// and carry the GitHub login only for display, in `github_login`.
///
/// Every login, renewal and device-flow outcome writes its audit line itself (``FlowAudit``).
///
/// ```swift
/// let token = try await service.generation2Login(githubToken: pat, method: .githubPAT, context: origin)
/// ```
public struct GitHubLoginService: Sendable {
    public let store: any Store
    public let resolver: GitHubIdentityResolver
    public let issuer: TokenIssuer
    public let orgTokens: OrgTokenService
    public let clock: any WallClock
    public let logger: Logger
    public let verifier: TokenVerifier
    public let generation2Lifetime: Int
    public let sessionMaxLifetime: Int
    public let homeOrganization: String
    /// The device flow needs the OAuth app's client id.
    public let deviceFlowEnabled: Bool
    /// GitHub logins per client address (429 over the limit, before GitHub is called).
    public let loginThrottle: GitHubLoginThrottle
    private let deviceIntervals = DeviceIntervals()
    /// A second of memory for account snapshots: a client logging in repeatedly then costs no
    /// database trip at all, and a membership change still applies within a second.
    private let recentSnapshots = RecentAccountSnapshots(lifetime: 1)
    /// Where logins and renewals are recorded.
    public let flows: FlowAudit

    public init(
        store: any Store, resolver: GitHubIdentityResolver, issuer: TokenIssuer, verifier: TokenVerifier,
        orgTokens: OrgTokenService, clock: any WallClock, logger: Logger, generation2Lifetime: Int,
        sessionMaxLifetime: Int, homeOrganization: String, flows: FlowAudit, deviceFlowEnabled: Bool = true,
        loginThrottle: GitHubLoginThrottle? = nil
    ) {
        self.flows = flows
        self.loginThrottle =
            loginThrottle
            ?? GitHubLoginThrottle(policy: GitHubLoginThrottlePolicy(), clock: clock, counting: ThrottleCounting(for: store))
        self.deviceFlowEnabled = deviceFlowEnabled
        self.verifier = verifier
        self.sessionMaxLifetime = sessionMaxLifetime
        self.store = store
        self.resolver = resolver
        self.issuer = issuer
        self.orgTokens = orgTokens
        self.clock = clock
        self.logger = logger
        self.generation2Lifetime = generation2Lifetime
        self.homeOrganization = homeOrganization
    }

    /// An organization the holder may use, with the role and the clusters it grants.
    public struct HeldOrganization: Sendable, Equatable {
        public var organization: Organization
        public var role: Role
        public var clusters: [String]
    }

    /// The local account and every organization the holder belongs to, by name.
    public struct Holder: Sendable {
        public var user: User
        public var organizations: [String: HeldOrganization]
        /// Whether this login created the account (the first login of a GitHub user admitted).
        public var isNewAccount = false
    }

    /// How a caller presents a GitHub token, which names the audit line.
    public enum TokenUse: Sendable {
        /// A login (`/auth/github/pat`, `/api/org_token_github/`): `login.github_pat`.
        case login
        /// An RFC 8693 exchange (`/oauth/token`): `token.exchange`, reason `github`.
        case exchange

        var action: AuditAction { self == .login ? .loginGitHubPAT : .tokenExchange }

        func attempt(_ githubToken: String, organization: String?) -> AuditSubject {
            AuditSubject(
                organization: organization, target: AuditEvent.tokenReference(githubToken),
                reason: self == .exchange ? "github" : nil)
        }
    }

    /// A signed generation-2 token for the holder of `githubToken`, audited as `use` says.
    /// - Parameters:
    ///   - client: the session's client; `nil`: the SlideRule clients' (``OrgTokenService/slideRuleClient``).
    ///   - context: the request; its client IP is what ``loginThrottle`` counts (`nil`: one
    ///     shared counter).
    public func generation2Login(
        githubToken: String, method: AuthenticationMethod, as use: TokenUse = .login, client: ClientID? = nil,
        context: AuditContext = .none
    ) async throws -> TokenIssuer.IssuedToken {
        let client = client ?? orgTokens.slideRuleClient
        return try await flows.run(use.action, context, attempt: use.attempt(githubToken, organization: nil)) {
            let counted = BrokerMetrics.LoginMethod(rawValue: method.rawValue) ?? .githubPAT
            return try await BrokerMetrics.countingLogin(counted) {
                try await loginThrottle.admit(clientIP: context.clientIP)
                return try await githubLogin(githubToken: githubToken, method: method, client: client)
            }
        } success: { $0.auditSubject }
    }

    private func githubLogin(githubToken: String, method: AuthenticationMethod, client: ClientID) async throws -> TokenIssuer.IssuedToken {
        let identity = try await resolver.identity(for: githubToken)
        let holder = try await holder(for: identity, createAccount: true)
        let now = clock.now()
        // The login is a session (`sid`), so that revocation reaches the token and its renewals.
        let session = try await forgettingStaleSnapshot(of: identity) {
            try await PresentedTokens.startSession(
                in: store, for: holder.user, scope: .allClusters, methods: [method], client: client, authenticatedAt: now,
                expiresAt: now.addingTimeInterval(TimeInterval(sessionMaxLifetime)))
        }
        var grant = generation2Grant(holder, login: identity.login, authenticatedAt: now, methods: [method.rawValue], client: client)
        grant.sessionID = session.id
        let issued = try await issuer.issue(grant, lifetime: generation2Lifetime)
        BrokerMetrics.tokenIssued(.generation2)
        logger.info(
            "github login", metadata: ["login": "\(identity.login)", "user": "\(holder.user.username)", "jti": "\(issued.claims.tokenID)"])
        return issued
    }

    /// Renews a generation-2 token (clients 5.0.4–5.4): memberships are checked again — from the
    /// store for linked accounts, from GitHub's recent answer for GitHub-mapped organizations
    /// (401 when that answer has expired: log in again). The renewed token keeps `auth_time`,
    /// and none lives past `session_max_lifetime` after it. A revoked token, an ended session or
    /// a disabled account is refused (``PresentedTokens``); the renewed token keeps the `sid`.
    /// Audited as `token.refresh`.
    public func generation2Refresh(bearer: String, context: AuditContext = .none) async throws -> TokenIssuer.IssuedToken {
        try await flows.run(.tokenRefresh, context, attempt: AuditSubject(target: AuditEvent.tokenReference(bearer))) {
            do {
                return try await renewGeneration2(bearer: bearer)
            } catch let error as BrokerError {
                // A signed token names its session even when it may no longer be renewed.
                throw error.concerning((try? verifier.verify(bearer)).map { AuditedSession($0) })
            }
        } success: { $0.auditSubject }
    }

    private func renewGeneration2(bearer: String) async throws -> TokenIssuer.IssuedToken {
        let presented = try await PresentedTokens(store: store, verifier: verifier, clock: clock).accept(bearer)
        let claims = presented.claims
        guard claims.identityProvider == "github", let previous = claims.memberships else {
            throw BrokerError(.invalidToken, "only generation-2 tokens from a GitHub login can be renewed here")
        }
        // A token without a session could be renewed beyond the reach of any revocation.
        guard let session = presented.session, session.scope == .allClusters else {
            throw BrokerError(.invalidToken, "this token names no renewable session; log in again")
        }
        let now = clock.now()
        let authenticatedAt = Date(timeIntervalSince1970: TimeInterval(claims.authenticatedAt))
        let remaining = Int(authenticatedAt.addingTimeInterval(TimeInterval(sessionMaxLifetime)).timeIntervalSince(now))
        guard remaining > 0 else {
            throw BrokerError(.sessionExpired, "the session has reached its maximum lifetime; log in again")
        }
        let identity = try await renewedIdentity(of: claims, previous: previous, now: now)
        let holder = try await holder(for: identity, createAccount: false)
        guard holder.user.id == session.userID, holder.user.id == claims.userID else {
            throw BrokerError(.invalidToken, "this GitHub identity no longer names the token's account: log in again")
        }
        var grant = generation2Grant(
            holder, login: identity.login, authenticatedAt: authenticatedAt, methods: claims.authenticationMethods,
            client: session.client(slideRule: orgTokens.slideRuleClient))
        grant.sessionID = session.id
        try await orgTokens.refreshThrottle.admit(sessionID: session.id)
        let renewed = try await issuer.issue(grant, lifetime: min(generation2Lifetime, remaining))
        BrokerMetrics.tokenIssued(.generation2)
        return renewed
    }

    /// The GitHub identity a renewal re-checks: the one recorded on the token's account (`sub`
    /// and `user_id` name the account; a login could name someone else by now), with GitHub's
    /// recent answer when there is one.
    private func renewedIdentity(
        of claims: AccessTokenClaims, previous: [String: [String]], now: Date
    ) async throws -> GitHubIdentity {
        let account = try await store.read { tx in try await tx.user(id: claims.userID) }
        guard let account, let githubID = account.githubID, let login = account.githubLogin else {
            throw BrokerError(.invalidToken, "this account is not linked to a verified GitHub identity: log in again")
        }
        if let recent = resolver.recentIdentity(githubID: githubID) { return recent }
        let mapped = Set(resolver.mappings.map(\.organization))
        if previous.keys.contains(where: mapped.contains) {
            throw BrokerError(.invalidToken, "GitHub must confirm the memberships again: log in again")
        }
        return GitHubIdentity(login: login, githubID: githubID, grants: [:], verifiedAt: now)
    }

    /// Starts GitHub's device flow (scope `read:org`); the answer goes to the client as it is.
    public func startDeviceFlow(clientIP: String? = nil) async throws -> GitHubDeviceCode {
        guard deviceFlowEnabled else {
            throw BrokerError(.unavailable, "the device flow is not configured on this broker (github_client_id)")
        }
        try await loginThrottle.admit(clientIP: clientIP)
        let code: GitHubDeviceCode
        do {
            code = try await resolver.api.requestDeviceCode(scope: "read:org")
        } catch {
            throw error.brokerError
        }
        let now = clock.now()
        deviceIntervals.remember(
            code.deviceCode, interval: code.interval, now: now, until: now.addingTimeInterval(TimeInterval(code.expiresIn)))
        return code
    }

    /// What a device-flow poll gives the client.
    public enum DevicePollOutcome: Sendable {
        /// Keep polling, no faster than `interval` seconds (GitHub's); `reason` is GitHub's
        /// `authorization_pending` or `slow_down`.
        case pending(reason: String, interval: Int)
        case authorized(TokenIssuer.IssuedToken)
        /// `expired_token`, `access_denied`, or another OAuth error GitHub gave.
        case failed(error: String)
    }

    /// Asks GitHub once whether the user approved; on approval, logs them in (generation 2).
    /// Audited as `login.github_device` once the flow ends: approved (success), expired or
    /// denied, or refused at approval (another GitHub user's login, no membership); a pending
    /// poll writes nothing.
    public func pollDeviceFlow(deviceCode: String, context: AuditContext = .none) async throws -> DevicePollOutcome {
        let target = AuditEvent.tokenReference(deviceCode)
        let outcome: DevicePollOutcome
        do {
            outcome = try await pollDeviceAuthorization(deviceCode: deviceCode, clientIP: context.clientIP)
        } catch let error as BrokerError where error.code != .auditUnavailable {
            // Refused like the same login at /auth/github/pat, but the line names no session.
            let refusal = AuditRefusal(error)
            try await flows.trail.record(
                .loginGitHubDevice, refusal.outcome, actor: nil, target: target, reason: refusal.reason, context: context)
            throw error
        }
        switch outcome {
        case .authorized(let issued):
            try await flows.run(.loginGitHubDevice, context, attempt: AuditSubject(target: target)) { issued } success: {
                $0.auditSubject
            }
        case .failed(let error):
            try await flows.trail.record(
                .loginGitHubDevice, error == "access_denied" ? .denied : .failure, actor: nil, target: target, reason: error,
                context: context)
        case .pending:
            break
        }
        return outcome
    }

    private func pollDeviceAuthorization(deviceCode: String, clientIP: String?) async throws -> DevicePollOutcome {
        switch try await pollDeviceToken(deviceCode: deviceCode, clientIP: clientIP) {
        case .pending(let reason, let interval): return .pending(reason: reason, interval: interval)
        case .failed(let error): return .failed(error: error)
        case .authorized(let accessToken):
            // Not throttled again: GitHub has handed out the token, refusing now would lose it.
            return .authorized(
                try await BrokerMetrics.countingLogin(.githubDevice) {
                    try await githubLogin(githubToken: accessToken, method: .githubDevice, client: orgTokens.slideRuleClient)
                })
        }
    }

    /// Exchanges the code GitHub's OAuth web flow returned for the user's GitHub token, counted
    /// by the GitHub login throttle (the portal's "Sign in with GitHub").
    /// - Throws: 429 over the throttle; 401 `github_token_invalid` for a code GitHub refuses
    ///   (used, expired, another verifier); GitHub's other failures as ``BrokerError``s.
    public func exchangeAuthorizationCode(
        _ code: String, redirectURI: String, codeVerifier: String, clientIP: String?
    ) async throws -> String {
        try await loginThrottle.admit(clientIP: clientIP)
        do {
            return try await resolver.api.exchangeAuthorizationCode(code: code, redirectURI: redirectURI, codeVerifier: codeVerifier)
        } catch {
            throw error.brokerError
        }
    }

    /// What one poll of GitHub's device flow says, GitHub's own token on approval (for a
    /// sign-in that is not a generation-2 login: the portal's).
    public enum DeviceTokenPoll: Sendable, Equatable {
        case pending(reason: String, interval: Int)
        /// GitHub's access token for the user who approved: what a PAT login is given.
        case authorized(githubToken: String)
        /// `expired_token`, `access_denied`, or another OAuth error GitHub gave.
        case failed(error: String)
    }

    /// Asks GitHub once whether the user approved, counted by the GitHub login throttle.
    /// - Throws: 503 when the device flow is not configured; 429 over the throttle; GitHub's
    ///   failures as ``BrokerError``s.
    public func pollDeviceToken(deviceCode: String, clientIP: String?) async throws -> DeviceTokenPoll {
        guard deviceFlowEnabled else {
            throw BrokerError(.unavailable, "the device flow is not configured on this broker (github_client_id)")
        }
        try await loginThrottle.admit(clientIP: clientIP)
        let poll: GitHubDevicePoll
        do {
            poll = try await resolver.api.pollDeviceAuthorization(deviceCode: deviceCode)
        } catch {
            throw error.brokerError
        }
        switch poll {
        case .pending(let fallback):
            // GitHub gives the interval with the device code, not with each pending answer.
            let interval = deviceIntervals.interval(for: deviceCode, now: clock.now()) ?? fallback
            return .pending(reason: "authorization_pending", interval: interval)
        case .slowDown(let interval):
            deviceIntervals.remember(deviceCode, interval: interval, now: clock.now(), until: nil)
            return .pending(reason: "slow_down", interval: interval)
        case .expired: return .failed(error: "expired_token")
        case .denied: return .failed(error: "access_denied")
        case .failed(let error): return .failed(error: error)
        case .authorized(let accessToken): return .authorized(githubToken: accessToken)
        }
    }

    /// A generation-1 bundle for one organization, for the holder of `githubToken`, audited as
    /// `use` says; the session's client is `client`, or the SlideRule clients'.
    public func generation1Login(
        githubToken: String, organization organizationName: String, as use: TokenUse = .login,
        client: ClientID? = nil, context: AuditContext = .none
    ) async throws -> TokenBundle {
        let client = client ?? orgTokens.slideRuleClient
        return try await flows.run(use.action, context, attempt: use.attempt(githubToken, organization: organizationName)) {
            try await BrokerMetrics.countingLogin(.githubPAT) {
                try await loginThrottle.admit(clientIP: context.clientIP)
                return try await githubOrganizationLogin(
                    githubToken: githubToken, organization: organizationName, client: client)
            }
        } success: { $0.auditSubject }
    }

    private func githubOrganizationLogin(
        githubToken: String, organization organizationName: String, client: ClientID
    ) async throws -> TokenBundle {
        let identity = try await resolver.identity(for: githubToken)
        let holder = try await holder(for: identity, createAccount: true, requireAny: false)
        guard let held = holder.organizations[organizationName] else {
            let exists = try await store.transaction { tx in try await tx.organization(named: organizationName) != nil }
            throw exists
                ? BrokerError(.notAMember, "\(identity.login) has no active membership in \(organizationName)")
                : BrokerError(.unknownOrganization, "unknown organization \(organizationName)")
        }
        return try await forgettingStaleSnapshot(of: identity) {
            try await orgTokens.startSession(
                user: holder.user, organization: held.organization, role: held.role, methods: [.github],
                identityProvider: "github", client: client, githubLogin: identity.login)
        }
    }

    /// A session starts only under the account's current versions (``PresentedTokens/record(_:in:)``);
    /// when a remembered snapshot held older ones, the next login reads the account afresh.
    private func forgettingStaleSnapshot<Value>(
        of identity: GitHubIdentity, _ start: () async throws -> Value
    ) async throws -> Value {
        do {
            return try await start()
        } catch let error as BrokerError where error.code == .credentialsChanged || error.code == .accountDisabled {
            recentSnapshots.forget(identity.githubID)
            throw error
        }
    }

    /// Builds the claims of a generation-2 token: `aud` lists every cluster (never a wildcard),
    /// `org` names the home organization, `memberships` every organization, `cluster_roles` the
    /// roles at each cluster, and `org_roles` only the roles held in every organization, so that
    /// a gateway reading `org_roles` alone never grants one organization's roles at another's
    /// cluster.
    func generation2Grant(
        _ holder: Holder, login: String, authenticatedAt: Date, methods: [String], client: ClientID
    ) -> TokenIssuer.Grant {
        let names = holder.organizations.keys.sorted()
        let home = holder.organizations[homeOrganization] != nil ? homeOrganization : names[0]
        let audience = Array(Set(holder.organizations.values.flatMap(\.clusters))).sorted()
        var memberships: [String: [String]] = [:]
        for (name, held) in holder.organizations { memberships[name] = held.role.impliedRoles }
        let commonRole = holder.organizations.values.map(\.role).min()!
        return TokenIssuer.Grant(
            user: holder.user, githubLogin: login, audience: audience, organization: home,
            organizationRoles: commonRole.impliedRoles, memberships: memberships,
            clusterRoles: Self.clusterRoles(audience, of: Array(holder.organizations.values), mappings: resolver.mappings),
            authenticatedAt: authenticatedAt, authenticationMethods: methods, identityProvider: "github", client: client)
    }

    /// The holder's roles at each cluster of `audience`: those of the organization owning the
    /// cluster. An organization owns its own cluster name and the team clusters configured for
    /// it (`github_orgs`); a name nobody held owns belongs to the organization whose token policy
    /// lists it. Should two organizations still claim a name alike, the lower of their roles:
    /// never more than either of them grants.
    static func clusterRoles(
        _ audience: [String], of organizations: [HeldOrganization], mappings: [GitHubOrganizationMapping]
    ) -> [String: [String]] {
        var teamClusters: [String: Set<String>] = [:]
        for mapping in mappings { teamClusters[mapping.organization, default: []].formUnion(mapping.teams.values) }
        var roles: [String: [String]] = [:]
        for cluster in audience {
            let owners = organizations.filter {
                $0.organization.clusterName == cluster || teamClusters[$0.organization.name]?.contains(cluster) == true
            }
            let claimants = owners.isEmpty ? organizations.filter { $0.clusters.contains(cluster) } : owners
            guard let role = claimants.map(\.role).min() else { continue }
            roles[cluster] = role.impliedRoles
        }
        return roles
    }

    /// Resolves the local account (creating it for a mapping-admitted GitHub user) and merges the
    /// store's memberships with GitHub's grants (the higher role wins, clusters add up).
    ///
    /// The account is the one recorded for GitHub's user id. A link by login alone gets the id at
    /// this first verified login; a renamed login (same id) is stored; the login of an account
    /// recorded for another id is refused with ``ErrorCode/githubIdentityMismatch`` (401): the
    /// login was renamed and re-registered by someone else.
    /// - Parameter admitNewcomer: create an account for a GitHub user no organization admits
    ///   (the portal's open sign-up); otherwise such a user without an account is refused.
    public func holder(
        for identity: GitHubIdentity, createAccount: Bool, requireAny: Bool = true, admitNewcomer: Bool = false
    ) async throws -> Holder {
        // The hot path (a returning user) only reads, on a snapshot that does not wait for writers.
        let names = identity.grants.keys.sorted()
        var snapshot: AccountSnapshot
        if let recent = recentSnapshots.lookup(identity.githubID, names, now: clock.now()) {
            snapshot = recent
        } else {
            snapshot = try await accountSnapshot(identity, names)
            if let user = snapshot.user, Self.isRecorded(identity, on: user) {
                recentSnapshots.remember(identity.githubID, names, snapshot, now: clock.now())
            }
        }
        if let user = snapshot.user, !Self.isRecorded(identity, on: user) {
            // The snapshot prefers the account of the id: one recorded for another id means none has ours.
            if let recorded = user.githubID, recorded != identity.githubID {
                throw mismatch(identity, account: user, recorded: recorded)
            }
            let binding = try await store.transaction { tx in try await bindAccount(to: identity, tx: tx) }
            log(binding, identity)
            snapshot = try await accountSnapshot(identity, names)
            if let user = snapshot.user, !Self.isRecorded(identity, on: user) {
                throw BrokerError(.conflict, "the account's GitHub link changed during this login; try again")
            }
        }
        var (user, organizations) = Self.merge(snapshot, identity)
        if organizations.isEmpty && (requireAny || (user == nil && !admitNewcomer)) {
            throw BrokerError(.notAMember, "no organization admits the GitHub user \(identity.login)")
        }
        var created = false
        if user == nil {
            guard createAccount else { throw BrokerError(.invalidCredentials, "no account for \(identity.login)") }
            let now = clock.now()
            let binding = try await store.transaction { tx in
                // Another login may have created or linked it since the snapshot.
                let binding = try await bindAccount(to: identity, tx: tx)
                if binding.account != nil { return binding }
                return Binding(account: try await Self.createAccount(for: identity, tx: tx, now: now), created: true)
            }
            log(binding, identity)
            user = binding.account
            created = binding.created
        }
        guard let user, user.isActive else {
            throw BrokerError(.accountDisabled, "this account is disabled")
        }
        return Holder(user: user, organizations: organizations, isNewAccount: created)
    }

    private func accountSnapshot(_ identity: GitHubIdentity, _ names: [String]) async throws -> AccountSnapshot {
        try await store.accountSnapshot(githubID: identity.githubID, login: identity.login, organizations: names)
    }

    /// Whether the account already records exactly this identity (no write needed).
    static func isRecorded(_ identity: GitHubIdentity, on user: User) -> Bool {
        user.githubID == identity.githubID && user.githubLogin == identity.login
    }

    /// The account of a verified GitHub identity, with the identity recorded on it: by id, with
    /// the login as GitHub spells it now (a rename); else a link by login alone, which gets the
    /// id. `nil` when no account is linked.
    /// - Throws: ``ErrorCode/githubIdentityMismatch`` when the login's account is recorded for
    ///   another GitHub user id.
    func bindAccount(to identity: GitHubIdentity, tx: any StoreTransaction) async throws -> Binding {
        if var account = try await tx.user(githubID: identity.githubID) {
            guard account.githubLogin != identity.login else { return Binding(account: account) }
            var binding = Binding(account: nil, renamedFrom: account.githubLogin ?? "-")
            // GitHub logins are unique at any moment: another account still holding this login
            // holds a stale link (its GitHub user renamed away, or it was linked by login alone
            // and the login is this id's now). The id keeps that account; the stale login goes.
            if let stale = try await tx.user(githubLogin: identity.login), stale.id != account.id {
                try await tx.setGitHubLink(userID: stale.id, login: nil, id: stale.githubID)
                binding.unlinkedStaleUser = stale.username
            }
            try await tx.setGitHubLink(userID: account.id, login: identity.login, id: identity.githubID)
            account.githubLogin = identity.login
            binding.account = account
            return binding
        }
        guard var account = try await tx.user(githubLogin: identity.login) else { return Binding(account: nil) }
        if let recorded = account.githubID, recorded != identity.githubID {
            throw mismatch(identity, account: account, recorded: recorded)
        }
        try await tx.setGitHubLink(userID: account.id, login: identity.login, id: identity.githubID)
        account.githubLogin = identity.login
        account.githubID = identity.githubID
        return Binding(account: account)
    }

    /// What ``bindAccount(to:tx:)`` did, logged once its transaction has committed (a body may
    /// run more than once).
    struct Binding: Sendable {
        var account: User?
        /// The login the account had before a rename.
        var renamedFrom: String?
        /// The account whose stale link to the login was removed.
        var unlinkedStaleUser: String?
        /// Whether the account was created, not found.
        var created = false
    }

    private func log(_ binding: Binding, _ identity: GitHubIdentity) {
        if let stale = binding.unlinkedStaleUser {
            logger.warning(
                "stale GitHub login link removed",
                metadata: ["user": "\(stale)", "login": "\(identity.login)", "github_id": "\(identity.githubID)"])
        }
        if let from = binding.renamedFrom, let account = binding.account {
            logger.info(
                "GitHub login renamed",
                metadata: [
                    "user": "\(account.username)", "from": "\(from)", "to": "\(identity.login)",
                    "github_id": "\(identity.githubID)",
                ])
        }
    }

    /// The refusal of a login whose account is recorded for another GitHub user id; the server log
    /// names the account and both ids (the answer and the audit line carry the code).
    private func mismatch(_ identity: GitHubIdentity, account: User, recorded: Int64) -> BrokerError {
        logger.warning(
            "GitHub login of another GitHub user refused",
            metadata: [
                "user": "\(account.username)", "login": "\(identity.login)", "github_id": "\(identity.githubID)",
                "recorded_github_id": "\(recorded)",
            ])
        return BrokerError(
            .githubIdentityMismatch,
            "the GitHub login \(identity.login) is linked to an account of another GitHub user (a renamed and "
                + "re-registered login); an administrator can link your GitHub user to an account")
    }

    /// The organizations held: the store's active memberships merged with GitHub's grants (the
    /// higher role wins, clusters add up).
    static func merge(_ snapshot: AccountSnapshot, _ identity: GitHubIdentity) -> (User?, [String: HeldOrganization]) {
        var organizations: [String: HeldOrganization] = [:]
        for entry in snapshot.memberships where entry.membership.isActive {
            organizations[entry.organization.name] = HeldOrganization(
                organization: entry.organization, role: entry.membership.role, clusters: entry.organization.tokenAudience)
        }
        for organization in snapshot.organizations {
            guard let grant = identity.grants[organization.name] else { continue }
            let clusters = (grant.includesOrganizationCluster ? organization.tokenAudience : []) + grant.teamClusters
            if var held = organizations[organization.name] {
                held.role = max(held.role, grant.role)
                held.clusters = Array(Set(held.clusters + clusters)).sorted()
                organizations[organization.name] = held
            } else {
                organizations[organization.name] = HeldOrganization(
                    organization: organization, role: grant.role, clusters: clusters.sorted())
            }
        }
        return (snapshot.user, organizations)
    }

    /// The account of a GitHub user admitted by a mapping: named after the login (or
    /// `<login>@github`, then `<login>@github.<id>`, when an account already has a name that
    /// reads the same: see ``AccountName``), linked to the GitHub user id, no password.
    static func createAccount(for identity: GitHubIdentity, tx: any StoreTransaction, now: Date) async throws -> User {
        let login = identity.login
        for candidate in [login, "\(login)@github", "\(login)@github.\(identity.githubID)"]
        where try await tx.user(named: candidate) == nil {
            do {
                return try await tx.insertUser(
                    NewUser(
                        username: candidate, passwordHash: nil, createdAt: now, githubLogin: login,
                        githubID: identity.githubID))
            } catch StoreError.duplicate(let what) where what.hasPrefix("user ") {
                continue  // its skeleton is another account's
            }
        }
        throw BrokerError(.alreadyExists, "cannot name an account for the GitHub user \(login)")
    }
}

/// The polling interval GitHub set for each device code (by hash), so that every answer to the
/// client carries GitHub's interval.
final class DeviceIntervals: Sendable {
    private let entries = Locked<[String: (interval: Int, expiresAt: Date)]>([:])

    func remember(_ deviceCode: String, interval: Int, now: Date, until expiry: Date?) {
        let key = Digest.sha256Hex(deviceCode)
        entries.withLock { entries in
            if entries.count > 10_000 {
                entries = entries.filter { $0.value.expiresAt > now }
            }
            // GitHub's device codes live 15 minutes.
            let expiresAt = expiry ?? entries[key]?.expiresAt ?? now.addingTimeInterval(900)
            entries[key] = (interval, expiresAt)
        }
    }

    func interval(for deviceCode: String, now: Date) -> Int? {
        let key = Digest.sha256Hex(deviceCode)
        return entries.withLock { entries in
            guard let entry = entries[key], entry.expiresAt > now else { return nil }
            return entry.interval
        }
    }
}

/// Account snapshots of the last `lifetime` seconds, by GitHub user id and granted organizations.
final class RecentAccountSnapshots: Sendable {
    private let lifetime: TimeInterval
    private let entries = Locked<[String: (snapshot: AccountSnapshot, expiresAt: Date)]>([:])

    init(lifetime: TimeInterval) {
        self.lifetime = lifetime
    }

    private func key(_ githubID: Int64, _ names: [String]) -> String {
        (["\(githubID)"] + names).joined(separator: "\u{0}")
    }

    func lookup(_ githubID: Int64, _ names: [String], now: Date) -> AccountSnapshot? {
        let key = key(githubID, names)
        return entries.withLock { entries in
            guard let entry = entries[key], entry.expiresAt > now else { return nil }
            return entry.snapshot
        }
    }

    /// Forgets every snapshot of the GitHub user.
    func forget(_ githubID: Int64) {
        let prefix = "\(githubID)\u{0}"
        entries.withLock { entries in
            entries = entries.filter { !$0.key.hasPrefix(prefix) && $0.key != "\(githubID)" }
        }
    }

    func remember(_ githubID: Int64, _ names: [String], _ snapshot: AccountSnapshot, now: Date) {
        let key = key(githubID, names)
        entries.withLock { entries in
            if entries.count >= 10_000 { entries = entries.filter { $0.value.expiresAt > now } }
            if entries.count >= 10_000 { entries.removeAll(keepingCapacity: true) }
            entries[key] = (snapshot, now.addingTimeInterval(lifetime))
        }
    }
}
