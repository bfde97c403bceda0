import BrokerCrypto
import BrokerSync
import Foundation

/// Asks GitHub who holds a token and which mapped organizations admit them, and remembers the
/// answer for a while, keyed by a SHA-256 of the token (never the token), so that a client
/// that logs in repeatedly costs one round of GitHub calls per TTL. A token GitHub rejected is
/// remembered briefly too. The latest identity per GitHub user id (never per login, which changes
/// hands) is kept for the same TTL, for re-checks that only have a broker token (generation 2's
/// `/auth/refresh`, a generation-1 refresh).
///
/// ```swift
/// let resolver = GitHubIdentityResolver(api: client, mappings: config.githubOrganizations, clock: SystemWallClock())
/// let identity = try await resolver.identity(for: pat)
/// ```
public final class GitHubIdentityResolver: Sendable {
    public let api: any GitHubAPI
    public let mappings: [GitHubOrganizationMapping]
    public let clock: any WallClock
    public let identityTTL: TimeInterval
    public let rejectionTTL: TimeInterval
    /// Bounds the memory a flood of distinct tokens can take.
    public let capacity: Int

    private struct State {
        var byToken: [String: Entry] = [:]
        var byGitHubID: [Int64: (identity: GitHubIdentity, expiresAt: Date)] = [:]
    }

    private enum Entry {
        case verified(GitHubIdentity, expiresAt: Date)
        case rejected(BrokerError, expiresAt: Date)

        var expiresAt: Date {
            switch self {
            case .verified(_, let date), .rejected(_, let date): date
            }
        }
    }

    private let state = Locked(State())

    public init(
        api: any GitHubAPI, mappings: [GitHubOrganizationMapping], clock: any WallClock, identityTTL: Int = 300,
        rejectionTTL: Int = 30, capacity: Int = 10_000
    ) {
        self.api = MeasuredGitHubAPI.wrapping(api)
        self.mappings = mappings
        self.clock = clock
        self.identityTTL = TimeInterval(identityTTL)
        self.rejectionTTL = TimeInterval(rejectionTTL)
        self.capacity = capacity
    }

    /// The identity behind `token`, from the cache or from GitHub.
    /// - Throws: ``BrokerError`` with a `github_*` code (401 rejected token, 403 missing scope,
    ///   503 rate limited or unreachable, 502 garbage).
    public func identity(for token: String) async throws -> GitHubIdentity {
        let key = Digest.sha256Hex(token)
        let now = clock.now()
        let cached = state.withLock { state -> Entry? in
            guard let entry = state.byToken[key], entry.expiresAt > now else { return nil }
            return entry
        }
        switch cached {
        case .verified(let identity, _)?: return identity
        case .rejected(let error, _)?: throw error
        case nil: break
        }
        let fetched: Result<GitHubIdentity, GitHubError>
        do {
            fetched = .success(try await fetch(token))
        } catch {
            fetched = .failure(error)
        }
        switch fetched {
        case .success(let identity):
            remember(key, .verified(identity, expiresAt: now.addingTimeInterval(identityTTL)), identity: identity)
            return identity
        case .failure(let error):
            if error == .unauthorized {
                remember(key, .rejected(error.brokerError, expiresAt: now.addingTimeInterval(rejectionTTL)), identity: nil)
            }
            throw error.brokerError
        }
    }

    /// The identity last verified for the GitHub user `githubID`, if it is younger than the TTL.
    public func recentIdentity(githubID: Int64) -> GitHubIdentity? {
        let now = clock.now()
        return state.withLock { state in
            guard let entry = state.byGitHubID[githubID], entry.expiresAt > now else { return nil }
            return entry.identity
        }
    }

    private func remember(_ key: String, _ entry: Entry, identity: GitHubIdentity?) {
        let now = clock.now()
        state.withLock { state in
            if state.byToken.count >= capacity {
                state.byToken = state.byToken.filter { $0.value.expiresAt > now }
                if state.byToken.count >= capacity { state.byToken.removeAll(keepingCapacity: true) }
            }
            state.byToken[key] = entry
            if let identity {
                if state.byGitHubID.count >= capacity {
                    state.byGitHubID = state.byGitHubID.filter { $0.value.expiresAt > now }
                }
                state.byGitHubID[identity.githubID] = (identity, entry.expiresAt)
            }
        }
    }

    private func fetch(_ token: String) async throws(GitHubError) -> GitHubIdentity {
        let user = try await api.user(token: token)
        var grants: [String: GitHubGrant] = [:]
        var teams: [GitHubTeam]?
        for mapping in mappings {
            var organizationRole: Role?
            if mapping.admitMembers,
                let membership = try await api.organizationMembership(
                    token: token, organization: mapping.githubOrganization, login: user.login),
                membership.state == "active"
            {
                organizationRole = membership.role == "admin" ? .owner : .member
            }
            var teamClusters: [String] = []
            if !mapping.teams.isEmpty {
                if teams == nil { teams = try await api.teams(token: token) }
                for team in teams ?? []
                where team.organization.lowercased() == mapping.githubOrganization.lowercased() {
                    if let cluster = mapping.teams[team.slug.lowercased()] { teamClusters.append(cluster) }
                }
            }
            if organizationRole != nil || !teamClusters.isEmpty {
                grants[mapping.organization] = GitHubGrant(
                    role: organizationRole ?? .member, includesOrganizationCluster: organizationRole != nil,
                    teamClusters: Array(Set(teamClusters)).sorted())
            }
        }
        return GitHubIdentity(login: user.login, githubID: user.id, grants: grants, verifiedAt: clock.now())
    }
}
