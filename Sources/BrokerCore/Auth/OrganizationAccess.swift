/// Who may get a token for which organization: an active account with an active membership.
public enum OrganizationAccess {
    /// The organization and the holder's role in it.
    /// - Throws: 403 ``ErrorCode/unknownOrganization`` or ``ErrorCode/notAMember``.
    public static func requireMembership(
        of user: User, in organizationName: String, tx: any StoreTransaction
    ) async throws -> (Organization, Role) {
        guard let organization = try await tx.organization(named: organizationName) else {
            throw BrokerError(.unknownOrganization, "unknown organization \(organizationName)")
        }
        return (organization, try await requireMembership(of: user, in: organization, tx: tx))
    }

    public static func requireMembership(
        of user: User, in organization: Organization, tx: any StoreTransaction
    ) async throws -> Role {
        guard let membership = try await tx.membership(organizationID: organization.id, userID: user.id),
            membership.isActive
        else {
            throw BrokerError(.notAMember, "\(user.username) has no active membership in \(organization.name)")
        }
        return membership.role
    }
}

// MARK: Current memberships (membership_status and introspection)

extension OrganizationAccess {
    /// The holder's role in the organization named `organizationName` as the store says now;
    /// `nil` without an active membership. `membership_status` answers with it, and introspection
    /// checks every membership a token asserts with it, so that the two agree at once.
    public static func currentRole(
        ofUser userID: Int64, in organizationName: String, tx: any StoreTransaction
    ) async throws -> Role? {
        guard let organization = try await tx.organization(named: organizationName),
            let membership = try await tx.membership(organizationID: organization.id, userID: userID),
            membership.isActive
        else { return nil }
        return membership.role
    }

    /// Whether everything a token asserts about its holder still holds: in each organization it
    /// names (`org` of a generation-1 token, every key of `memberships`) the holder's current
    /// roles are exactly the token's, and a broker session token's global role (`role`) is the
    /// current one. Any change, up or down, fails it: a refresh or a new login brings a token with
    /// the current roles. Organizations a `github_orgs` mapping admits to (`githubMapped`) are left
    /// to GitHub in tokens of a GitHub login: GitHub, not the store, may grant those.
    public static func claimsStillHold(
        _ claims: AccessTokenClaims, user: User, isSessionToken: Bool, githubMapped: Set<String>,
        tx: any StoreTransaction
    ) async throws -> Bool {
        if isSessionToken { return claims.globalRole == user.globalRole?.rawValue }
        var asserted = claims.memberships ?? [:]
        if claims.memberships == nil, !claims.organization.isEmpty {
            asserted[claims.organization] = claims.organizationRoles
        }
        for (organization, roles) in asserted {
            if claims.identityProvider == "github", githubMapped.contains(organization) { continue }
            guard let role = try await currentRole(ofUser: user.id, in: organization, tx: tx),
                Set(role.impliedRoles) == Set(roles)
            else { return false }
        }
        return true
    }
}
