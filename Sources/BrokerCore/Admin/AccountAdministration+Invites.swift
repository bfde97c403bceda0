import Foundation

/// Invitations to the portal's sign-up (``Invitation``): an organization's owners and admins
/// invite people into it with a role they hold themselves; global admins (and the CLI's
/// operator) may also invite someone to an account alone. The code is shown once, to the
/// caller; the store and the audit log know the invitation by its id.
extension AccountAdministration {
    /// The one answer to a code that cannot be used, whether unknown, used or expired: telling
    /// them apart would tell someone guessing which codes exist.
    public static var invalidInvitation: BrokerError { BrokerError(.invalidRequest, "this invitation is not valid") }

    /// Makes an invitation and its code (shown once; only its hash is stored). With an
    /// organization the actor must manage it and hold `role` at least; without one (an account
    /// alone, `role` ignored: `member`) the actor must be a global admin. Audited as
    /// `invite.create`, target the invitation's id, reason `role=<role>`.
    /// - Parameter lifetime: seconds, within ``Invitation/lifetimeRange``; callers offer
    ///   ``Invitation/defaultLifetime``.
    /// - Throws: 400 for a lifetime out of range; 403 without the authority; 404 for an unknown
    ///   organization.
    public func createInvitation(
        organization name: String?, role: Role, lifetime: Int, by actor: AdministrativeActor
    ) async throws -> (Invitation, code: String) {
        // Drawn outside the transaction body, which may run more than once.
        let code = InvitationCode.generate()
        let id = InvitationCode.newID()
        let now = clock.now()
        let granted = name == nil ? Role.member : role
        let audited = audited(.inviteCreate, by: actor, organization: name, target: id)
        let invitation = try await audited.run {
            guard Invitation.lifetimeRange.contains(lifetime) else {
                throw BrokerError(
                    .invalidRequest,
                    phrased: """
                        \(.input("expires")) must be between \(Invitation.lifetimeRange.lowerBound) and \
                        \(Invitation.lifetimeRange.upperBound) seconds (30 days)
                        """)
            }
            if name == nil { try actor.requireGlobalAdmin("invite someone to an account without an organization") }
            return try await audited.commit(in: store, reason: "role=\(granted.rawValue)") { tx in
                var organizationID: Int64?
                if let name {
                    let organization = try await Self.requireOrganization(name, tx)
                    let authority = try await actor.requireManager(of: organization, tx: tx)
                    guard granted <= authority else {
                        throw BrokerError(.forbidden, "\(actor.name) cannot grant the role \(granted.rawValue) in \(name)")
                    }
                    organizationID = organization.id
                }
                let invitation = Invitation(
                    id: id, codeHash: InvitationCode.hash(of: code), organizationID: organizationID, role: granted,
                    createdBy: actor.userID, createdAt: now, expiresAt: now.addingTimeInterval(TimeInterval(lifetime)))
                try await tx.insertInvitation(invitation)
                return invitation
            }
        }
        return (invitation, code: code)
    }

    /// An organization's invitations for its managers, or (nil) the account-only ones for global
    /// admins; newest first, used and expired ones included until the pruner deletes them.
    public func invitations(organization name: String?, by actor: AdministrativeActor) async throws -> [Invitation] {
        if name == nil { try actor.requireGlobalAdmin("list invitations without an organization") }
        return try await store.read { tx in
            var organizationID: Int64?
            if let name {
                let organization = try await Self.requireOrganization(name, tx)
                try await actor.requireManager(of: organization, tx: tx)
                organizationID = organization.id
            }
            return try await tx.invitations(organizationID: organizationID)
        }
    }

    /// Withdraws an invitation (its row goes; the audit log keeps its history): an owner or
    /// admin of its organization, or a global admin for any. Audited as `invite.revoke`, target
    /// the id, with its organization.
    /// - Throws: 404 for an unknown id; 403 without the authority.
    public func revokeInvitation(id: String, by actor: AdministrativeActor) async throws {
        // Its organization names the audit line, so it is read first; the transaction decides.
        let organization = try await store.read { tx -> String? in
            guard let organizationID = try await tx.invitation(id: id)?.organizationID else { return nil }
            return try await tx.organization(id: organizationID)?.name
        }
        let audited = audited(.inviteRevoke, by: actor, organization: organization, target: id)
        try await audited.run {
            try await audited.commit(in: store) { tx in
                guard let invitation = try await tx.invitation(id: id) else {
                    throw BrokerError(.notFound, "no invitation \(id)")
                }
                if let organizationID = invitation.organizationID {
                    guard let organization = try await tx.organization(id: organizationID) else {
                        throw BrokerError(.notFound, "no invitation \(id)")
                    }
                    try await actor.requireManager(of: organization, tx: tx)
                } else {
                    try actor.requireGlobalAdmin("revoke invitations without an organization")
                }
                guard try await tx.deleteInvitation(id: id) else { throw BrokerError(.notFound, "no invitation \(id)") }
            }
        }
    }

    /// Uses the invitation whose code was typed, in the caller's transaction (a sign-up's, so
    /// that a refused code leaves no account behind): marks it used by `user` and, for an
    /// organization's invitation, makes `user` an active member with its role (never lowering a
    /// role the account already holds there) and drops a pending request to join.
    /// - Throws: 400 ``invalidInvitation`` for an unknown, used or expired code alike.
    @discardableResult
    static func redeemInvitation(
        code: String, for user: User, at now: Date, _ tx: any StoreTransaction
    ) async throws -> Invitation {
        guard let invitation = try await tx.invitation(codeHash: InvitationCode.hash(of: code)),
            try await tx.redeemInvitation(id: invitation.id, by: user.id, at: now)
        else { throw invalidInvitation }
        if let organizationID = invitation.organizationID {
            let existing = try await tx.membership(organizationID: organizationID, userID: user.id)
            let held = existing.flatMap { $0.isActive ? $0.role : nil }
            try await tx.upsertMembership(
                Membership(
                    organizationID: organizationID, userID: user.id, role: max(held ?? invitation.role, invitation.role),
                    isActive: true, createdAt: existing?.createdAt ?? now))
            _ = try await tx.deleteMembershipRequest(organizationID: organizationID, userID: user.id)
        }
        return invitation
    }
}
