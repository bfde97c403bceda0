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
