import Foundation

/// What GitHub vouched for about the holder of a token: the login, and the broker
/// organizations that GitHub-mapped configuration admits them to.
public struct GitHubIdentity: Sendable, Equatable {
    public var login: String
    public var githubID: Int64
    /// Broker organization → what GitHub grants there.
    public var grants: [String: GitHubGrant]
    public var verifiedAt: Date

    public init(login: String, githubID: Int64, grants: [String: GitHubGrant], verifiedAt: Date) {
        self.login = login
        self.githubID = githubID
        self.grants = grants
        self.verifiedAt = verifiedAt
    }
}

/// A membership GitHub grants in one broker organization.
public struct GitHubGrant: Sendable, Equatable {
    /// `owner` for GitHub org admins, otherwise `member`.
    public var role: Role
    /// Whether the organization's own cluster is granted (an active member of the GitHub org),
    /// not only team clusters.
    public var includesOrganizationCluster: Bool
    /// Cluster names granted through team membership.
    public var teamClusters: [String]

    public init(role: Role, includesOrganizationCluster: Bool, teamClusters: [String]) {
        self.role = role
        self.includesOrganizationCluster = includesOrganizationCluster
        self.teamClusters = teamClusters
    }
}

extension GitHubError {
    /// The broker's answer to a GitHub failure, in the caller's terms.
    public var brokerError: BrokerError {
        switch self {
        case .unauthorized:
            BrokerError(.githubTokenInvalid, "GitHub rejected the token (invalid, expired or revoked)")
        case .forbidden(let message):
            BrokerError(
                .githubForbidden,
                "GitHub refused to answer for this token (it needs the read:org scope): \(message.prefix(200))")
        case .rateLimited(let seconds):
            BrokerError(.githubRateLimited, "GitHub's rate limit for this token is exhausted", retryAfter: seconds)
        case .unavailable(let why):
            BrokerError(.githubUnavailable, "GitHub could not be reached: \(why.prefix(200))")
        case .malformedResponse(let why):
            BrokerError(.githubBadResponse, "GitHub sent an unexpected response: \(why.prefix(200))")
        case .authorizationCodeRejected:
            // Like a rejected token: the credential presented is no good, GitHub is fine.
            BrokerError(
                .githubTokenInvalid,
                "GitHub refused the authorization code (expired, already used, or not issued to this sign-in): sign in with GitHub again")
        }
    }
}
