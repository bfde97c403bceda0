import Foundation

/// What only global admins do: list and delete accounts and organizations, grant global roles,
/// and see or end a user's sessions (refresh families).
extension AccountAdministration {
    /// The most accounts one page holds.
    public static let maximumPageSize = 200

    /// One page of accounts ordered by id, and the cursor of the next page (`nil` at the end).
    public func users(
        after cursor: Int64 = 0, limit: Int = 50, by actor: AdministrativeActor
    ) async throws -> (users: [User], next: Int64?) {
        try actor.requireGlobalAdmin("list accounts")
        let size = min(max(1, limit), Self.maximumPageSize)
        // One more than asked tells whether another page exists.
        let rows = try await store.read { tx in try await tx.users(afterID: cursor, limit: size + 1) }
        let page = Array(rows.prefix(size))
        return (page, rows.count > size ? page.last?.id : nil)
    }

    public func user(named username: String, by actor: AdministrativeActor) async throws -> User {
        try actor.requireGlobalAdmin("read accounts")
        return try await store.read { tx in try await Self.requireUser(username, tx) }
    }

    /// Grants or withdraws a global role. The last active admin cannot lose the role.
    @discardableResult
    public func setGlobalRole(
        _ username: String, to role: GlobalRole?, by actor: AdministrativeActor
    ) async throws -> User {
        let audited = audited(.userRoleChange, by: actor, target: username)
        return try await audited.run {
            try actor.requireGlobalAdmin("change global roles")
            return try await audited.commit(in: store, reason: "global_role=\(role?.rawValue ?? "none")") { tx in
                var user = try await Self.requireUser(username, tx)
                if role != .admin { try await Self.requireAnotherAdmin(besides: user, tx) }
                try await tx.setGlobalRole(userID: user.id, to: role)
                user.globalRole = role
                return user
            }
        }
    }

    /// Deletes an account with its memberships, requests and sessions.
    public func deleteUser(_ username: String, by actor: AdministrativeActor) async throws {
        let audited = audited(.userDelete, by: actor, target: username)
        try await audited.run {
            try actor.requireGlobalAdmin("delete accounts")
            try await audited.commit(in: store) { tx in
                let user = try await Self.requireUser(username, tx)
                try await Self.requireAnotherAdmin(besides: user, tx)
                _ = try await tx.deleteUser(id: user.id)
            }
        }
    }

    /// Deletes an organization with its memberships, requests and sessions. Its cluster name and
    /// audiences stay reserved (a gateway of its cluster may still run) until an admin releases
    /// them with ``releaseAudienceName(_:by:)``.
    public func deleteOrganization(_ name: String, by actor: AdministrativeActor) async throws {
        let audited = audited(.orgDelete, by: actor, organization: name)
        try await audited.run {
            try actor.requireGlobalAdmin("delete organizations")
            try await audited.commit(in: store) { tx in
                let organization = try await Self.requireOrganization(name, tx)
                try await tx.reserveAudienceNames(organizationID: organization.id, formerOrganization: organization.name)
                _ = try await tx.deleteOrganization(id: organization.id)
            }
        }
    }

    // MARK: Sessions

    /// A user's sessions (every login: generation 1, generation 2, broker sessions), newest first,
    /// with the organization name of generation-1 sessions.
    public func sessions(
        of username: String, by actor: AdministrativeActor
    ) async throws -> [(family: RefreshFamily, organization: String?)] {
        try actor.requireGlobalAdmin("list sessions")
        return try await store.read { tx in
            let user = try await Self.requireUser(username, tx)
            let names = Dictionary(uniqueKeysWithValues: try await tx.organizations().map { ($0.id, $0.name) })
            return try await tx.refreshFamilies(userID: user.id).map { family in
                (family, family.organizationID.map { names[$0] ?? "" })
            }
        }
    }

    /// Ends one session: its refresh tokens stop working at once.
    public func revokeSession(_ familyID: String, of username: String, by actor: AdministrativeActor) async throws {
        let now = clock.now()
        // The line names the session's organization; an organization never changes its id.
        let session = try await store.read { tx -> AuditedSession? in
            guard let family = try await tx.refreshFamily(id: familyID) else { return nil }
            return try await AuditedSession.of(family, in: tx)
        }
        let organization = session?.username == username ? session?.organization : nil
        let audited = audited(.sessionRevoke, by: actor, organization: organization, session: familyID, target: username)
        try await audited.run {
            try actor.requireGlobalAdmin("revoke sessions")
            try await audited.commit(in: store, reason: "admin") { tx in
                let user = try await Self.requireUser(username, tx)
                guard let family = try await tx.refreshFamily(id: familyID), family.userID == user.id else {
                    throw BrokerError(.notFound, "\(username) has no session \(familyID)")
                }
                try await tx.revokeRefreshFamily(id: family.id, at: now, reason: "admin")
            }
        }
    }

    /// Signs a user out everywhere (every kind of session, so every token that names one:
    /// refresh tokens at once; access, generation-2 and broker session tokens wherever the broker
    /// is asked — renewal, introspection, the admin API; and a login under way starts none);
    /// returns how many live sessions were ended.
    @discardableResult
    public func revokeAllSessions(of username: String, by actor: AdministrativeActor) async throws -> Int {
        let now = clock.now()
        let audited = audited(.sessionRevokeAll, by: actor, target: username)
        return try await audited.run {
            try actor.requireGlobalAdmin("revoke sessions")
            return try await audited.commit(in: store, reason: "admin") { tx in
                let user = try await Self.requireUser(username, tx)
                return try await Self.endSessions(of: user, reason: "admin", at: now, tx)
            }
        }
    }

    /// - Throws: 409 when `user` is the last active global admin: the broker would be left
    ///   without anyone able to administer it over HTTP.
    static func requireAnotherAdmin(besides user: User, _ tx: any StoreTransaction) async throws {
        guard user.isAdmin, user.isActive else { return }
        let admins = try await tx.users().filter { $0.isAdmin && $0.isActive && $0.id != user.id }
        guard !admins.isEmpty else {
            throw BrokerError(.conflict, "\(user.username) is the last active admin")
        }
    }
}
