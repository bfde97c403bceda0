import Foundation

/// A broker account. Usernames follow Django's rule (1–150 of letters, digits and `@.+-_`) within
/// the name profile of ``AccountName``: stored as first spelled (imports keep Django's spelling),
/// compared by their key, so `ALICE` finds `alice`.
public struct User: Sendable, Equatable {
    public var id: Int64
    public var username: String
    /// An encoded password hash (argon2id PHC, or a migrated Django hash); `nil` when the account
    /// has no password (for example a GitHub-only account).
    public var passwordHash: String?
    public var isActive: Bool
    public var createdAt: Date
    /// The GitHub login linked to this account (compared case-insensitively, as GitHub does), as
    /// GitHub last spelled it: for display and for finding a link whose ``githubID`` is unknown.
    public var githubLogin: String?
    /// GitHub's numeric user id, the identity itself: logins get renamed and re-registered, ids
    /// never change hands. Recorded at the first verified GitHub login (or given when linking);
    /// from then on only this id gets the account. `nil`: linked by login only, not yet verified.
    public var githubID: Int64?
    /// The account's role across the whole broker (`nil`: none).
    public var globalRole: GlobalRole?
    /// Its current credential and session versions, read in the same row as ``passwordHash``:
    /// a session is good only while they are the ones it started under.
    public var versions: AccountVersions

    public init(
        id: Int64, username: String, passwordHash: String?, isActive: Bool, createdAt: Date, githubLogin: String? = nil,
        githubID: Int64? = nil, globalRole: GlobalRole? = nil, versions: AccountVersions = .initial
    ) {
        self.versions = versions
        self.githubID = githubID
        self.id = id
        self.username = username
        self.passwordHash = passwordHash
        self.isActive = isActive
        self.createdAt = createdAt
        self.githubLogin = githubLogin
        self.globalRole = globalRole
    }

    public var isAdmin: Bool { globalRole == .admin }
}

/// A role across the whole broker, carried by broker session tokens in the `role` claim.
public enum GlobalRole: String, Sendable, CaseIterable, Equatable {
    /// Manages users, organizations, memberships, sessions and keys.
    case admin
    /// May call `/oauth/introspect` (an online check for gateways), nothing else.
    case introspector
}

/// The fields of a user that does not exist yet (the store assigns the id).
public struct NewUser: Sendable, Equatable {
    public var username: String
    public var passwordHash: String?
    public var isActive: Bool
    public var createdAt: Date
    /// The id to use instead of the next free one; imports keep the old system's primary key so
    /// that `user_id` in tokens stays what gateways and nodes already know. Must be free.
    public var preferredID: Int64?
    public var githubLogin: String?
    public var githubID: Int64?
    public var globalRole: GlobalRole?

    public init(
        username: String, passwordHash: String?, isActive: Bool = true, createdAt: Date, preferredID: Int64? = nil,
        githubLogin: String? = nil, githubID: Int64? = nil, globalRole: GlobalRole? = nil
    ) {
        self.githubID = githubID
        self.globalRole = globalRole
        self.username = username
        self.passwordHash = passwordHash
        self.isActive = isActive
        self.createdAt = createdAt
        self.preferredID = preferredID
        self.githubLogin = githubLogin
    }
}

/// An organization owns one private cluster. Its tokens name the cluster in `aud`.
public struct Organization: Sendable, Equatable {
    public var id: Int64
    public var name: String
    /// The audience a gateway of this org's cluster checks; the org name unless configured.
    public var clusterName: String
    public var createdAt: Date
    /// What the organization's owners chose for its tokens, within the broker's bounds.
    public var tokenPolicy: OrganizationTokenPolicy

    public init(
        id: Int64, name: String, clusterName: String, createdAt: Date, tokenPolicy: OrganizationTokenPolicy = .init()
    ) {
        self.id = id
        self.name = name
        self.clusterName = clusterName
        self.createdAt = createdAt
        self.tokenPolicy = tokenPolicy
    }

    /// `aud` of this organization's tokens: the policy's audiences, or the cluster name.
    public var tokenAudience: [String] { tokenPolicy.audiences ?? [clusterName] }

    /// The access-token lifetime for this organization: its policy's, capped by the broker's.
    public func accessLifetime(brokerMaximum: Int) -> Int {
        min(tokenPolicy.accessLifetime ?? brokerMaximum, brokerMaximum)
    }
}

/// Per-organization token policy set by its owners. `nil` members follow the broker's defaults.
public struct OrganizationTokenPolicy: Sendable, Equatable {
    /// Seconds; never more than the broker's `access_lifetime`.
    public var accessLifetime: Int?
    /// The cluster and service names in `aud` (for example `["org1", "org1-jupyter"]`).
    public var audiences: [String]?

    public init(accessLifetime: Int? = nil, audiences: [String]? = nil) {
        self.accessLifetime = accessLifetime
        self.audiences = audiences
    }
}

/// A user's pending request to join an organization.
public struct MembershipRequest: Sendable, Equatable {
    public var organizationID: Int64
    public var userID: Int64
    public var username: String
    public var requestedAt: Date

    public init(organizationID: Int64, userID: Int64, username: String, requestedAt: Date) {
        self.organizationID = organizationID
        self.userID = userID
        self.username = username
        self.requestedAt = requestedAt
    }
}

/// One of an account's own pending requests, as its holder sees it: the organization by name
/// and cluster (``StoreTransaction/membershipRequests(userID:)``), where an owner's list
/// (``MembershipRequest``) names the requester.
public struct OwnMembershipRequest: Sendable, Equatable {
    public var organizationID: Int64
    public var organizationName: String
    public var clusterName: String
    public var requestedAt: Date

    public init(organizationID: Int64, organizationName: String, clusterName: String, requestedAt: Date) {
        self.organizationID = organizationID
        self.organizationName = organizationName
        self.clusterName = clusterName
        self.requestedAt = requestedAt
    }
}

/// A role inside an organization. Higher roles include the lower ones in `org_roles`.
public enum Role: String, Sendable, CaseIterable, Codable, Comparable {
    case member
    case owner
    case admin

    var rank: Int {
        switch self {
        case .member: 0
        case .owner: 1
        case .admin: 2
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }

    /// The roles a holder of this role has, highest first, as they appear in `org_roles`.
    public var impliedRoles: [String] {
        Role.allCases.filter { $0 <= self }.reversed().map(\.rawValue)
    }
}

/// A user's membership of an organization.
public struct Membership: Sendable, Equatable {
    public var organizationID: Int64
    public var userID: Int64
    public var role: Role
    public var isActive: Bool
    public var createdAt: Date

    public init(organizationID: Int64, userID: Int64, role: Role, isActive: Bool, createdAt: Date) {
        self.organizationID = organizationID
        self.userID = userID
        self.role = role
        self.isActive = isActive
        self.createdAt = createdAt
    }
}

/// A membership joined with the member's username, for listings.
public struct MemberListing: Sendable, Equatable {
    public var username: String
    public var membership: Membership

    public init(username: String, membership: Membership) {
        self.username = username
        self.membership = membership
    }
}

/// One of a user's memberships with its organization, for building multi-org claims.
public struct UserMembership: Sendable, Equatable {
    public var organization: Organization
    public var membership: Membership

    public init(organization: Organization, membership: Membership) {
        self.organization = organization
        self.membership = membership
    }
}
