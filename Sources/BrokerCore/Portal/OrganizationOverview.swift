import Foundation

/// What the portal's page of one organization shows its managers, read in one transaction
/// after the same check every manager's API call makes (owner or admin of it, or a global
/// admin; 403 otherwise).
public struct OrganizationOverview: Sendable, Equatable {
    public var organization: Organization
    /// The reader's authority in it: what roles they may grant and whom they may manage.
    public var authority: Role
    /// Oldest first.
    public var requests: [MembershipRequest]
    public var members: [MemberListing]

    /// The roles the reader may grant (at most their own).
    public var grantableRoles: [Role] { Role.allCases.filter { $0 <= authority } }

    /// - Throws: 404 for an unknown organization; 403 unless `actor` manages it.
    public static func read(_ name: String, by actor: AdministrativeActor, in store: any Store) async throws -> OrganizationOverview {
        try await store.read { tx in
            let organization = try await AccountAdministration.requireOrganization(name, tx)
            let authority = try await actor.requireManager(of: organization, tx: tx)
            return OrganizationOverview(
                organization: organization, authority: authority,
                requests: try await tx.membershipRequests(organizationID: organization.id),
                members: try await tx.members(organizationID: organization.id).sorted { $0.username < $1.username })
        }
    }
}
