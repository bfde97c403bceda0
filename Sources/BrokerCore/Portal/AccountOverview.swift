import Foundation

/// What the portal's account page shows of its holder, read in one transaction: memberships,
/// pending requests and live sessions.
public struct AccountOverview: Sendable, Equatable {
    public var memberships: [UserMembership]
    public var pendingRequests: [OwnMembershipRequest]
    /// Newest first.
    public var sessions: [LiveSession]

    /// A session that can still yield or vouch for tokens, and what started it.
    public struct LiveSession: Sendable, Equatable {
        public var family: RefreshFamily
        public var client: Client
        /// When the browser was last seen, for a portal session (to within a minute).
        public var lastSeenAt: Date?
        /// Whether it is the browser asking.
        public var isCurrent: Bool
    }

    /// Which client a session belongs to, from its scope and whether a browser holds it.
    public enum Client: Sendable, Equatable {
        /// Generation 1 (`/api/org_token/`): one organization's cluster.
        case generation1(organization: String?)
        /// Generation 2 (GitHub): every cluster the holder may use.
        case generation2
        /// A browser signed in to the portal.
        case browser
        /// A broker session token (`POST /api/session`): the admin and membership API.
        case brokerAPI
    }

    /// Reads the overview of `session`'s account; sessions that ended (revoked, expired, or of
    /// an earlier credential or session version) are left out, as ``PresentedTokens`` would
    /// refuse them.
    public static func read(for session: PortalSession, in store: any Store, now: Date) async throws -> AccountOverview {
        let user = session.user
        return try await store.read { tx in
            let memberships = try await tx.memberships(userID: user.id)
            let requests = try await tx.membershipRequests(userID: user.id)
            let browsers = try await tx.portalSessionLastSeen(userID: user.id)
            var organizationNames: [Int64: String] = [:]
            for membership in memberships { organizationNames[membership.organization.id] = membership.organization.name }
            var sessions: [LiveSession] = []
            for family in try await tx.refreshFamilies(userID: user.id) {
                guard PresentedTokens.sessionRefusal(family, now: now) == nil,
                    PresentedTokens.accountRefusal(user, of: family) == nil
                else { continue }
                let client: Client
                switch family.scope {
                case .organization(let id):
                    if organizationNames[id] == nil { organizationNames[id] = try await tx.organization(id: id)?.name }
                    client = .generation1(organization: organizationNames[id])
                case .allClusters: client = .generation2
                case .broker: client = browsers[family.id] == nil ? .brokerAPI : .browser
                }
                sessions.append(
                    LiveSession(
                        family: family, client: client, lastSeenAt: browsers[family.id],
                        isCurrent: family.id == session.family.id))
            }
            sessions.sort { $0.family.authenticatedAt > $1.family.authenticatedAt }
            return AccountOverview(memberships: memberships, pendingRequests: requests, sessions: sessions)
        }
    }
}
