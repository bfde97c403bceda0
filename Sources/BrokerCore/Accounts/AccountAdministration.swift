import BrokerCrypto
import Foundation

/// The account operations of the CLI and the admin API: every rule about names, passwords,
/// memberships and who may change them lives here, not in the commands or routes. Each change
/// is audited (see ``AuditedAction``).
///
/// ```swift
/// let admin = AccountAdministration(store: store, pool: pool, clock: SystemWallClock(), audit: trail)
/// try await admin.addUser("alice", password: "correct horse battery", by: .operator)
/// ```
public struct AccountAdministration: Sendable {
    public let store: any Store
    public let pool: PasswordHashingPool
    public let clock: any WallClock
    public let audit: AuditTrail

    public init(store: any Store, pool: PasswordHashingPool, clock: any WallClock, audit: AuditTrail = .discarding) {
        self.store = store
        self.pool = pool
        self.clock = clock
        self.audit = audit
    }

    func audited(
        _ action: AuditAction, by actor: AdministrativeActor, organization: String? = nil, session: String? = nil,
        target: String? = nil
    ) -> AuditedAction {
        AuditedAction(action, by: actor, organization: organization, session: session, target: target, trail: audit)
    }

    // MARK: Users

    @discardableResult
    public func addUser(
        _ username: String, password: String?, globalRole: GlobalRole? = nil, by actor: AdministrativeActor
    ) async throws -> User {
        let audited = audited(.userCreate, by: actor, target: username)
        return try await audited.run {
            try actor.requireGlobalAdmin("create accounts")
            let name = try NamePolicy.validateUsername(username)
            var hash: String?
            if let password {
                try PasswordPolicy.validateNew(password)
                hash = try await pool.hash(password)
            }
            let user = NewUser(username: name.display, passwordHash: hash, createdAt: clock.now(), globalRole: globalRole)
            return try await audited.commit(in: store, reason: globalRole.map { "global_role=\($0.rawValue)" }) { tx in
                try await Self.insertNewUser(user, tx)
            }
        }
    }

    /// Someone creates their own account at the portal's sign-up page (`portal_signup: open`, or
    /// `invite` with an invitation): the same name and password rules as
    /// ``addUser(_:password:globalRole:by:)``, never a global role; audited as `user.create` by
    /// the actor `signup`, reason `signup`, the target the new name (a refused name that breaks
    /// the name policy is not written: it may be anything, a password typed in the wrong field).
    /// The caller has admitted the attempt through the sign-up throttle.
    ///
    /// With an `invitation` code, the account is created and the invitation used in one
    /// transaction (``redeemInvitation(code:for:at:_:)``): a code that cannot be used creates no
    /// account. The reason is then `signup invite=<id>`, and an organization's invitation also
    /// writes `membership.add` (actor `signup`, reason `invite=<id>`).
    /// - Throws: 400 `invalid_username`, `invalid_password`, or `invalid_request` "this invitation
    ///   is not valid" (unknown, used and expired alike); 409 when the name is taken.
    public func signUp(username: String, password: String, invitation code: String? = nil, context: AuditContext) async throws -> User {
        let shownName = (try? NamePolicy.validateUsername(username))?.display
        let page = AdministrativeActor.signUpPage(context: context)
        let audited = AuditedAction(.userCreate, by: page, target: shownName, trail: audit)
        let now = clock.now()
        return try await audited.run {
            let name = try NamePolicy.validateUsername(username)
            try PasswordPolicy.validateNew(password)
            guard let code else {
                let hash = try await pool.hash(password)
                let user = NewUser(username: name.display, passwordHash: hash, createdAt: now, globalRole: nil)
                return try await audited.commit(in: store, reason: "signup") { tx in try await Self.insertNewUser(user, tx) }
            }
            // The invitation's id and organization name the audit lines, written before the
            // transaction that uses it; that transaction decides whether it still may be used.
            let found = try await store.read { tx -> (Invitation, organization: String?)? in
                guard let invitation = try await tx.invitation(codeHash: InvitationCode.hash(of: code)), invitation.isOpen(at: now)
                else { return nil }
                guard let organizationID = invitation.organizationID else { return (invitation, organization: nil) }
                return (invitation, organization: try await tx.organization(id: organizationID)?.name)
            }
            guard let (invitation, organization) = found else { throw Self.invalidInvitation }
            let hash = try await pool.hash(password)
            let user = NewUser(username: name.display, passwordHash: hash, createdAt: now, globalRole: nil)
            let membership = organization.map { organization in
                (
                    action: AuditedAction(.membershipAdd, by: page, organization: organization, target: name.display, trail: audit),
                    reason: Optional("invite=\(invitation.id)")
                )
            }
            return try await audited.commit(
                in: store, reason: "signup invite=\(invitation.id)", alongside: membership.map { [$0] } ?? []
            ) { tx in
                let created = try await Self.insertNewUser(user, tx)
                try await Self.redeemInvitation(code: code, for: created, at: now, tx)
                return created
            }
        }
    }

    /// Inserts an account; a name taken (or confusable with a taken one) is 409 naming its holder.
    static func insertNewUser(_ user: NewUser, _ tx: any StoreTransaction) async throws -> User {
        do {
            return try await tx.insertUser(user)
        } catch StoreError.duplicate {
            let holder = try await tx.user(confusableWith: user.username)
            throw nameTaken("user", user.username, holder?.username)
        }
    }

    /// Sets a new password and signs the account out everywhere: whoever knew the old password
    /// must not keep a session, nor start one with a login that was checking the old password
    /// while this committed (the credential and session versions advance; see
    /// ``PresentedTokens/record(_:in:)``).
    public func setPassword(_ username: String, password: String, by actor: AdministrativeActor) async throws {
        let audited = audited(.userPasswordReset, by: actor, target: username)
        try await audited.run {
            try actor.requireGlobalAdmin("reset passwords")
            try PasswordPolicy.validateNew(password)
            let hash = try await pool.hash(password)
            let now = clock.now()
            try await audited.commit(in: store) { tx in
                let user = try await Self.requireUser(username, tx)
                try await tx.updatePasswordHash(userID: user.id, to: hash)
                _ = try await tx.advanceCredentialVersion(userID: user.id)
                _ = try await Self.endSessions(of: user, reason: "password_reset", at: now, tx)
            }
        }
    }

    /// Disables or enables an account. A disabled account cannot sign in, refresh or use the
    /// admin API, and introspection reports its tokens inactive. Disabling ends every session
    /// (the session version advances), so enabling the account again revives none of them:
    /// while it is disabled its tokens are refused as `account_disabled`, afterwards as ended
    /// sessions, and enabling marks those sessions revoked.
    public func setActive(_ username: String, _ active: Bool, by actor: AdministrativeActor) async throws {
        let audited = audited(active ? .userEnable : .userDisable, by: actor, target: username)
        let now = clock.now()
        try await audited.run {
            try actor.requireGlobalAdmin(active ? "enable accounts" : "disable accounts")
            try await audited.commit(in: store) { tx in
                let user = try await Self.requireUser(username, tx)
                if !active { try await Self.requireAnotherAdmin(besides: user, tx) }
                try await tx.setUserActive(userID: user.id, active)
                if !active {
                    _ = try await tx.advanceSessionVersion(userID: user.id)
                } else if !user.isActive {
                    _ = try await tx.revokeRefreshFamilies(userID: user.id, at: now, reason: "account_disabled")
                }
            }
        }
    }

    /// Signs an account out everywhere, in the caller's transaction: the session version
    /// advances (every session started before has ended, and a login under way starts none)
    /// and the sessions are marked revoked. Returns how many live sessions were ended.
    static func endSessions(of user: User, reason: String, at now: Date, _ tx: any StoreTransaction) async throws -> Int {
        _ = try await tx.advanceSessionVersion(userID: user.id)
        return try await tx.revokeRefreshFamilies(userID: user.id, at: now, reason: reason)
    }

    /// Links a GitHub user to an account (the generation-1 model): a GitHub login with that
    /// identity then gets exactly the account's memberships. `nil` unlinks.
    ///
    /// The identity is GitHub's numeric user id. Without `githubID` the link holds the login
    /// alone and the first verified GitHub login with it records the id (re-linking the login
    /// an account already has keeps the recorded id); from then on only that id gets the account.
    /// Replacing or removing a link the account had is a credential change: the account is
    /// signed out everywhere, as after a password reset.
    public func linkGitHub(
        _ username: String, login: String?, githubID: Int64? = nil, by actor: AdministrativeActor
    ) async throws {
        let reason = login.map { "github_login=\($0)" + (githubID.map { " github_id=\($0)" } ?? "") } ?? "unlinked"
        let audited = audited(.userLinkGitHub, by: actor, target: username)
        let now = clock.now()
        try await audited.run {
            try actor.requireGlobalAdmin("link GitHub logins")
            if let login { try NamePolicy.validateGitHubLogin(login) }
            if let githubID {
                guard login != nil else { throw BrokerError(.invalidRequest, "a GitHub user id needs a GitHub login") }
                guard githubID > 0 else { throw BrokerError(.invalidRequest, "a GitHub user id is a positive integer") }
            }
            try await audited.commit(in: store, reason: reason) { tx in
                let user = try await Self.requireUser(username, tx)
                let sameLogin = login != nil && user.githubLogin?.lowercased() == login?.lowercased()
                let id = githubID ?? (sameLogin ? user.githubID : nil)
                do {
                    try await tx.setGitHubLink(userID: user.id, login: login, id: id)
                } catch StoreError.duplicate(let what) {
                    throw BrokerError(.alreadyExists, "the \(what) is linked to another account")
                }
                let withdrawn = user.githubLogin != nil && (!sameLogin || (user.githubID != nil && id != user.githubID))
                if withdrawn {
                    _ = try await tx.advanceCredentialVersion(userID: user.id)
                    _ = try await Self.endSessions(of: user, reason: "github_link_changed", at: now, tx)
                }
            }
        }
    }

    /// `alice` exists and `Alice`, `аlice` (Cyrillic а) or `ａｌｉｃｅ` was asked for: the
    /// refusal names the holder, so that the admin sees why.
    static func nameTaken(_ what: String, _ name: String, _ holder: String?) -> BrokerError {
        guard let holder, holder != name else { return BrokerError(.alreadyExists, "\(what) \(name) already exists") }
        return BrokerError(.alreadyExists, "\(what) \(name) reads the same as the existing \(what) \(holder)")
    }

    /// Names from before the name profile that read like an older one's (see
    /// ``StoreTransaction/nameCollisions()``).
    public func nameCollisions() async throws -> [NameCollision] {
        try await store.read { tx in try await tx.nameCollisions() }
    }

    public func users() async throws -> [User] {
        try await store.transaction { tx in try await tx.users() }
    }

    static func requireUser(_ username: String, _ tx: any StoreTransaction) async throws -> User {
        guard let user = try await tx.user(named: username) else {
            throw BrokerError(.notFound, "no user named \(username)")
        }
        return user
    }

    // MARK: Organizations

    @discardableResult
    public func addOrganization(
        _ name: String, clusterName: String? = nil, by actor: AdministrativeActor
    ) async throws -> Organization {
        let audited = audited(.orgCreate, by: actor, organization: name)
        return try await audited.run {
            try actor.requireGlobalAdmin("create organizations")
            try NamePolicy.validateOrganizationName(name)
            let cluster = clusterName ?? name
            try NamePolicy.validateOrganizationName(cluster, what: "a cluster name")
            let now = clock.now()
            return try await audited.commit(in: store, reason: "cluster=\(cluster)") { tx in
                let organization: Organization
                do {
                    organization = try await tx.insertOrganization(name: name, clusterName: cluster, createdAt: now)
                } catch StoreError.duplicate(let what) {
                    guard what.hasPrefix("organization cluster name") else {
                        let holder = try await tx.organization(confusableWith: name)
                        throw Self.nameTaken("organization", name, holder?.name)
                    }
                    throw BrokerError(.alreadyExists, "\(what) already exists")
                }
                if let held = try await Self.claim(cluster, for: organization, use: .cluster, tx) {
                    throw Self.refusal(held)
                }
                return organization
            }
        }
    }

    public func organizations(by actor: AdministrativeActor) async throws -> [Organization] {
        try actor.requireGlobalAdmin("list organizations")
        return try await store.read { tx in try await tx.organizations() }
    }

    static func requireOrganization(_ name: String, _ tx: any StoreTransaction) async throws -> Organization {
        guard let organization = try await tx.organization(named: name) else {
            throw BrokerError(.notFound, "no organization named \(name)")
        }
        return organization
    }

    // MARK: Memberships

    /// Adds an active membership, or changes the role of an existing one (re-activating it).
    public func addMember(
        organization: String, username: String, role: Role, by actor: AdministrativeActor
    ) async throws {
        let now = clock.now()
        let audited = audited(.membershipAdd, by: actor, organization: organization, target: username)
        try await audited.run {
            try actor.requireGlobalAdmin("add members directly")
            try await audited.commit(in: store, reason: "role=\(role.rawValue)") { tx in
                let org = try await Self.requireOrganization(organization, tx)
                let user = try await Self.requireUser(username, tx)
                let existing = try await tx.membership(organizationID: org.id, userID: user.id)
                try await tx.upsertMembership(
                    Membership(
                        organizationID: org.id, userID: user.id, role: role, isActive: true,
                        createdAt: existing?.createdAt ?? now))
            }
        }
    }
}
