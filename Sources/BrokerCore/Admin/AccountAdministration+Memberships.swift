import Foundation

/// Membership requests, member management and per-organization token policy. Owners and admins
/// of an organization manage it; global admins (and the CLI's operator) manage every one.
extension AccountAdministration {
    /// The signed-in user asks to join an organization.
    /// - Throws: 404 for an unknown organization; 409 when already an active member or when a
    ///   request is pending.
    public func requestMembership(organization name: String, by actor: AdministrativeActor) async throws -> MembershipRequest {
        let now = clock.now()
        let audited = audited(.membershipRequest, by: actor, organization: name, target: actor.name)
        return try await audited.run {
            guard let userID = actor.userID else {
                throw BrokerError(.invalidRequest, "only a signed-in account can ask to join an organization")
            }
            return try await audited.commit(in: store) { tx in
                guard let user = try await tx.user(id: userID) else { throw BrokerError(.notFound, "no such account") }
                let organization = try await Self.requireOrganization(name, tx)
                if let membership = try await tx.membership(organizationID: organization.id, userID: user.id),
                    membership.isActive
                {
                    throw BrokerError(.conflict, "\(user.username) is already a member of \(name)")
                }
                do {
                    try await tx.insertMembershipRequest(organizationID: organization.id, userID: user.id, at: now)
                } catch StoreError.duplicate {
                    throw BrokerError(.conflict, "\(user.username) already asked to join \(name)")
                }
                return MembershipRequest(
                    organizationID: organization.id, userID: user.id, username: user.username, requestedAt: now)
            }
        }
    }

    /// Pending requests, oldest first.
    public func membershipRequests(
        organization name: String, by actor: AdministrativeActor
    ) async throws -> [MembershipRequest] {
        try await store.transaction { tx in
            let organization = try await Self.requireOrganization(name, tx)
            try await actor.requireManager(of: organization, tx: tx)
            return try await tx.membershipRequests(organizationID: organization.id)
        }
    }

    /// Grants a pending request with `role` (which the actor must hold at least).
    @discardableResult
    public func approveMembership(
        organization name: String, username: String, role: Role = .member, by actor: AdministrativeActor
    ) async throws -> Membership {
        let now = clock.now()
        let audited = audited(.membershipApprove, by: actor, organization: name, target: username)
        return try await audited.run {
            try await audited.commit(in: store, reason: "role=\(role.rawValue)") { tx in
                let organization = try await Self.requireOrganization(name, tx)
                let authority = try await actor.requireManager(of: organization, tx: tx)
                guard role <= authority else {
                    throw BrokerError(.forbidden, "\(actor.name) cannot grant the role \(role.rawValue) in \(name)")
                }
                let user = try await Self.requireUser(username, tx)
                guard try await tx.deleteMembershipRequest(organizationID: organization.id, userID: user.id) else {
                    throw BrokerError(.notFound, "\(username) has no pending request to join \(name)")
                }
                // A request exists only without an active membership; an inactive one is renewed
                // with the role granted now, never with a higher role it once had.
                let existing = try await tx.membership(organizationID: organization.id, userID: user.id)
                let membership = Membership(
                    organizationID: organization.id, userID: user.id, role: role, isActive: true,
                    createdAt: existing?.createdAt ?? now)
                try await tx.upsertMembership(membership)
                return membership
            }
        }
    }

    public func denyMembership(
        organization name: String, username: String, by actor: AdministrativeActor
    ) async throws {
        let audited = audited(.membershipDeny, by: actor, organization: name, target: username)
        try await audited.run {
            try await audited.commit(in: store) { tx in
                let organization = try await Self.requireOrganization(name, tx)
                try await actor.requireManager(of: organization, tx: tx)
                let user = try await Self.requireUser(username, tx)
                guard try await tx.deleteMembershipRequest(organizationID: organization.id, userID: user.id) else {
                    throw BrokerError(.notFound, "\(username) has no pending request to join \(name)")
                }
            }
        }
    }

    /// Members of an organization, for its managers.
    public func members(organization name: String, by actor: AdministrativeActor) async throws -> [MemberListing] {
        try await store.transaction { tx in
            let organization = try await Self.requireOrganization(name, tx)
            try await actor.requireManager(of: organization, tx: tx)
            return try await tx.members(organizationID: organization.id)
        }
    }

    /// Changes a member's role. The actor must hold at least both the member's current role and
    /// the new one: an owner manages members and owners, only admins touch admins.
    @discardableResult
    public func changeRole(
        organization name: String, username: String, to role: Role, by actor: AdministrativeActor
    ) async throws -> Membership {
        let audited = audited(.membershipRoleChange, by: actor, organization: name, target: username)
        return try await audited.run {
            try await audited.commit(in: store, reason: "role=\(role.rawValue)") { tx in
                let (_, authority, _, found) = try await Self.managedMember(name, username, by: actor, tx)
                guard var membership = found else { throw BrokerError(.notFound, "\(username) is not a member of \(name)") }
                guard membership.role <= authority, role <= authority else {
                    throw BrokerError(
                        .forbidden, "\(actor.name) cannot change \(membership.role.rawValue) \(username) to \(role.rawValue) in \(name)")
                }
                membership.role = role
                try await tx.upsertMembership(membership)
                return membership
            }
        }
    }

    /// Removes a member. Their sessions for this organization stay, so that their next refresh
    /// answers 403 (not a member) rather than 401.
    public func removeMember(
        organization name: String, username: String, by actor: AdministrativeActor
    ) async throws {
        let audited = audited(.membershipRemove, by: actor, organization: name, target: username)
        try await audited.run {
            try await audited.commit(in: store) { tx in
                let (organization, authority, user, found) = try await Self.managedMember(name, username, by: actor, tx)
                guard let membership = found else { throw BrokerError(.notFound, "\(username) is not a member of \(name)") }
                guard membership.role <= authority else {
                    throw BrokerError(.forbidden, "\(actor.name) cannot remove \(membership.role.rawValue) \(username) from \(name)")
                }
                _ = try await tx.deleteMembership(organizationID: organization.id, userID: user.id)
            }
        }
    }

    /// The organization, the actor's authority over it (owner or above, else 403), the named
    /// account and its membership there, if any.
    static func managedMember(
        _ name: String, _ username: String, by actor: AdministrativeActor, _ tx: any StoreTransaction
    ) async throws -> (Organization, Role, User, Membership?) {
        let organization = try await requireOrganization(name, tx)
        let authority = try await actor.requireManager(of: organization, tx: tx)
        let user = try await requireUser(username, tx)
        return (organization, authority, user, try await tx.membership(organizationID: organization.id, userID: user.id))
    }

    // MARK: Token policy

    public func tokenPolicy(organization name: String, by actor: AdministrativeActor) async throws -> Organization {
        try await store.transaction { tx in
            let organization = try await Self.requireOrganization(name, tx)
            try await actor.requireManager(of: organization, tx: tx)
            return organization
        }
    }

    /// Sets an organization's token policy within the broker's bounds: a lifetime of at least 60
    /// seconds and at most `access_lifetime`; audiences that are names (never `*`), at most 16,
    /// none of them another organization's cluster, audience or team cluster, nor a deleted
    /// organization's reserved name (an owner must not mint tokens for someone else's cluster):
    /// 409 `audience_taken`. Service audiences are open to every organization.
    @discardableResult
    public func setTokenPolicy(
        organization name: String, to policy: OrganizationTokenPolicy, brokerAccessLifetime: Int,
        by actor: AdministrativeActor
    ) async throws -> Organization {
        let audited = audited(.orgPolicyChange, by: actor, organization: name)
        let summary =
            "access_lifetime=\(policy.accessLifetime.map(String.init) ?? "default") "
            + "audiences=\(policy.audiences?.joined(separator: ",") ?? "default")"
        return try await audited.run {
            if let lifetime = policy.accessLifetime, !(60...brokerAccessLifetime).contains(lifetime) {
                throw BrokerError(
                    .invalidRequest,
                    phrased: """
                        \(.input("access_lifetime")) must be between 60 and the broker's access_lifetime \
                        (\(brokerAccessLifetime)) seconds
                        """)
            }
            if let audiences = policy.audiences {
                guard (1...16).contains(audiences.count), Set(audiences).count == audiences.count else {
                    throw BrokerError(.invalidRequest, phrased: "\(.input("audiences")) must list 1 to 16 distinct names")
                }
                for audience in audiences {
                    do {
                        try NamePolicy.validateOrganizationName(audience, what: "an audience")
                    } catch let error as BrokerError {
                        throw BrokerError(.invalidRequest, error.detail)
                    }
                }
            }
            return try await audited.commit(in: store, reason: summary) { tx in
                var organization = try await Self.requireOrganization(name, tx)
                try await actor.requireManager(of: organization, tx: tx)
                try await Self.claimPolicyAudiences(policy.audiences, for: organization, tx)
                try await tx.setTokenPolicy(organizationID: organization.id, to: policy)
                organization.tokenPolicy = policy
                return organization
            }
        }
    }
}
