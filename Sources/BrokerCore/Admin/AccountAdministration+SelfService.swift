import Foundation

/// What an account's holder does for themselves (the portal's account page): withdraw a
/// request, leave an organization, end their own sessions, change their password. Each is
/// audited with the holder as actor and reason `self` (or `withdrawn`), in the same line shapes
/// as the manager's or admin's twin.
extension AccountAdministration {
    /// The holder's own account, as stored now.
    /// - Throws: 401 when the actor is no signed-in account (the CLI's operator is not one).
    static func requireHolder(_ actor: AdministrativeActor, _ tx: any StoreTransaction) async throws -> User {
        guard let userID = actor.userID, let user = try await tx.user(id: userID) else {
            throw BrokerError(.invalidToken, "sign in as the account first")
        }
        return user
    }

    /// Organizations the holder may ask to join: every organization they are not an active
    /// member of and have no pending request for, by name.
    public func joinableOrganizations(by actor: AdministrativeActor) async throws -> [Organization] {
        try await store.read { tx in
            let user = try await Self.requireHolder(actor, tx)
            let active = Set(try await tx.memberships(userID: user.id).filter(\.membership.isActive).map(\.organization.id))
            let pending = Set(try await tx.membershipRequests(userID: user.id).map(\.organizationID))
            return try await tx.organizations()
                .filter { !active.contains($0.id) && !pending.contains($0.id) }
                .sorted { $0.name < $1.name }
        }
    }

    /// The holder withdraws their pending request to join `name`; audited as `membership.deny`
    /// by the holder, reason `withdrawn`.
    /// - Throws: 404 for an unknown organization or when no request is pending.
    public func withdrawMembershipRequest(organization name: String, by actor: AdministrativeActor) async throws {
        let audited = audited(.membershipDeny, by: actor, organization: name, target: actor.name)
        try await audited.run {
            try await audited.commit(in: store, reason: "withdrawn") { tx in
                let user = try await Self.requireHolder(actor, tx)
                let organization = try await Self.requireOrganization(name, tx)
                guard try await tx.deleteMembershipRequest(organizationID: organization.id, userID: user.id) else {
                    throw BrokerError(.notFound, "\(user.username) has no pending request to join \(name)")
                }
            }
        }
    }

    /// The holder leaves `name`; audited as `membership.remove` with the holder as actor and
    /// target, reason `self`. The last owner may leave (as a manager may remove them): global
    /// admins still manage the organization. Sessions of the organization stay, so their next
    /// refresh answers 403 (not a member), as after a removal.
    /// - Throws: 404 for an unknown organization or when not a member.
    public func leaveOrganization(_ name: String, by actor: AdministrativeActor) async throws {
        let audited = audited(.membershipRemove, by: actor, organization: name, target: actor.name)
        try await audited.run {
            try await audited.commit(in: store, reason: "self") { tx in
                let user = try await Self.requireHolder(actor, tx)
                let organization = try await Self.requireOrganization(name, tx)
                guard try await tx.deleteMembership(organizationID: organization.id, userID: user.id) else {
                    throw BrokerError(.notFound, "\(user.username) is not a member of \(name)")
                }
            }
        }
    }

    /// Ends one of the holder's own sessions; audited as `session.revoke`, reason `self`.
    /// - Throws: 404 when the account has no such session (another account's id included).
    public func revokeOwnSession(_ familyID: String, by actor: AdministrativeActor) async throws {
        let now = clock.now()
        let session = try await store.read { tx -> AuditedSession? in
            guard let family = try await tx.refreshFamily(id: familyID), family.userID == actor.userID else { return nil }
            return try await AuditedSession.of(family, in: tx)
        }
        let audited = audited(
            .sessionRevoke, by: actor, organization: session?.organization, session: familyID, target: actor.name)
        try await audited.run {
            try await audited.commit(in: store, reason: "self") { tx in
                let user = try await Self.requireHolder(actor, tx)
                guard let family = try await tx.refreshFamily(id: familyID), family.userID == user.id else {
                    throw BrokerError(.notFound, "\(user.username) has no session \(familyID)")
                }
                try await tx.revokeRefreshFamily(id: family.id, at: now, reason: "self")
            }
        }
    }

    /// Signs the holder out everywhere, this browser included; audited as `session.revoke_all`,
    /// reason `self`. Returns how many live sessions were ended.
    @discardableResult
    public func revokeAllOwnSessions(by actor: AdministrativeActor) async throws -> Int {
        let now = clock.now()
        let audited = audited(.sessionRevokeAll, by: actor, target: actor.name)
        return try await audited.run {
            try await audited.commit(in: store, reason: "self") { tx in
                let user = try await Self.requireHolder(actor, tx)
                return try await Self.endSessions(of: user, reason: "self", at: now, tx)
            }
        }
    }

    /// Sets the holder's new password once `verified` has checked the current one (the caller
    /// runs it through ``PasswordAuthenticator``, throttled like every login). Every session of
    /// the account ends, as after an admin's reset; audited as `user.password_reset` by the
    /// holder, reason `self`. Returns the account as stored after the change.
    /// - Throws: 400 `invalid_password` when the new password fails the policy; what `verified` throws.
    public func changeOwnPassword(
        to password: String, by actor: AdministrativeActor, verified: () async throws -> User
    ) async throws -> User {
        let audited = audited(.userPasswordReset, by: actor, target: actor.name)
        return try await audited.run {
            let user = try await verified()
            guard user.id == actor.userID else { throw BrokerError(.forbidden, "only the account's holder may change its password") }
            try PasswordPolicy.validateNew(password)
            let hash = try await pool.hash(password)
            let now = clock.now()
            return try await audited.commit(in: store, reason: "self") { tx in
                let user = try await Self.requireHolder(actor, tx)
                try await tx.updatePasswordHash(userID: user.id, to: hash)
                _ = try await tx.advanceCredentialVersion(userID: user.id)
                _ = try await Self.endSessions(of: user, reason: "password_change", at: now, tx)
                return try await Self.requireHolder(actor, tx)
            }
        }
    }

    /// Links the GitHub user a device flow has just proved (`identity`) to the holder's account,
    /// which has no link yet; audited as `user.link_github` by the holder, reason
    /// `github_login=… github_id=… self`. Adding a way to sign in ends no session.
    /// - Throws: 409 when the account is linked already, or another account holds the GitHub
    ///   user (by id or login).
    public func linkOwnGitHub(_ identity: GitHubIdentity, by actor: AdministrativeActor) async throws {
        let audited = audited(.userLinkGitHub, by: actor, target: actor.name)
        try await audited.run {
            try await audited.commit(
                in: store, reason: "github_login=\(identity.login) github_id=\(identity.githubID) self"
            ) { tx in
                let user = try await Self.requireHolder(actor, tx)
                guard user.githubLogin == nil, user.githubID == nil else {
                    throw BrokerError(.conflict, "\(user.username) is linked to a GitHub user already; unlink it first")
                }
                var holder = try await tx.user(githubID: identity.githubID)
                if holder == nil { holder = try await tx.user(githubLogin: identity.login) }
                if let holder {
                    throw BrokerError(.alreadyExists, "the GitHub user \(identity.login) is linked to another account (\(holder.username))")
                }
                do {
                    try await tx.setGitHubLink(userID: user.id, login: identity.login, id: identity.githubID)
                } catch StoreError.duplicate {
                    throw BrokerError(.alreadyExists, "the GitHub user \(identity.login) is linked to another account")
                }
            }
        }
    }

    /// Removes the holder's GitHub link; audited as `user.link_github`, reason `unlinked self`.
    /// A credential change, as an admin's unlinking is: every session ends, this browser's too.
    /// - Throws: 404 without a link; 409 for an account without a password (it could no longer
    ///   sign in).
    public func unlinkOwnGitHub(by actor: AdministrativeActor) async throws {
        let audited = audited(.userLinkGitHub, by: actor, target: actor.name)
        let now = clock.now()
        try await audited.run {
            try await audited.commit(in: store, reason: "unlinked self") { tx in
                let user = try await Self.requireHolder(actor, tx)
                guard user.githubLogin != nil || user.githubID != nil else {
                    throw BrokerError(.notFound, "\(user.username) has no GitHub link")
                }
                guard user.passwordHash != nil else {
                    throw BrokerError(
                        .conflict, "\(user.username) signs in with GitHub only: set a password first (ask an administrator)")
                }
                try await tx.setGitHubLink(userID: user.id, login: nil, id: nil)
                _ = try await tx.advanceCredentialVersion(userID: user.id)
                _ = try await Self.endSessions(of: user, reason: "github_link_changed", at: now, tx)
            }
        }
    }
}
