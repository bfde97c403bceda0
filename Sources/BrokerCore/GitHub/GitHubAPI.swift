/// The calls the broker makes to GitHub (REST API and device flow), in engine-independent
/// terms: the libcurl client (`GitHubClient`) implements it, and tests substitute a fake server
/// behind the same client. Tokens passed in are secrets: implementations never log them.
public protocol GitHubAPI: Sendable {
    /// `GET /user`: who holds `token`.
    func user(token: String) async throws(GitHubError) -> GitHubUser
    /// `GET /orgs/{org}/memberships/{login}`; `nil` when GitHub answers 404 (not a member, or
    /// the org is invisible to the token).
    func organizationMembership(token: String, organization: String, login: String) async throws(GitHubError)
        -> GitHubOrganizationMembership?
    /// `GET /user/teams`, following `Link: rel="next"` until the last page.
    func teams(token: String) async throws(GitHubError) -> [GitHubTeam]
    /// `POST {web}/login/device/code` with the configured client id and `scope`.
    func requestDeviceCode(scope: String) async throws(GitHubError) -> GitHubDeviceCode
    /// `POST {web}/login/oauth/access_token` with
    /// `grant_type=urn:ietf:params:oauth:grant-type:device_code`.
    func pollDeviceAuthorization(deviceCode: String) async throws(GitHubError) -> GitHubDevicePoll
}

public struct GitHubUser: Sendable, Equatable {
    public var login: String
    public var id: Int64

    public init(login: String, id: Int64) {
        self.login = login
        self.id = id
    }
}

public struct GitHubOrganizationMembership: Sendable, Equatable {
    /// `active` or `pending`.
    public var state: String
    /// `admin` or `member`.
    public var role: String

    public init(state: String, role: String) {
        self.state = state
        self.role = role
    }
}

public struct GitHubTeam: Sendable, Equatable {
    public var slug: String
    /// The `organization.login` of the team.
    public var organization: String

    public init(slug: String, organization: String) {
        self.slug = slug
        self.organization = organization
    }
}

public struct GitHubDeviceCode: Sendable, Equatable {
    public var deviceCode: String
    public var userCode: String
    public var verificationURI: String
    public var verificationURIComplete: String?
    public var expiresIn: Int
    public var interval: Int

    public init(
        deviceCode: String, userCode: String, verificationURI: String, verificationURIComplete: String?,
        expiresIn: Int, interval: Int
    ) {
        self.deviceCode = deviceCode
        self.userCode = userCode
        self.verificationURI = verificationURI
        self.verificationURIComplete = verificationURIComplete
        self.expiresIn = expiresIn
        self.interval = interval
    }
}

/// GitHub's answer to one device-flow poll.
public enum GitHubDevicePoll: Sendable, Equatable {
    case authorized(accessToken: String)
    /// `authorization_pending`: ask again after `interval` seconds.
    case pending(interval: Int)
    /// `slow_down`: the client polled too fast; GitHub's new interval.
    case slowDown(interval: Int)
    /// `expired_token`
    case expired
    /// `access_denied`
    case denied
    /// Any other OAuth error code GitHub gives (`incorrect_device_code`, `unsupported_grant_type`, ...).
    case failed(error: String)
}

/// Why a GitHub call failed, in the terms the broker answers with.
public enum GitHubError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 401: the token is invalid, expired or revoked.
    case unauthorized
    /// 403 (not a rate limit): e.g. the token lacks a scope such as `read:org`; GitHub's message.
    case forbidden(String)
    /// 403 with `X-RateLimit-Remaining: 0`, or 429: no calls before `retryAfter` seconds.
    case rateLimited(retryAfter: Int)
    /// Unreachable, timed out, connection reset, or 5xx.
    case unavailable(String)
    /// A body that is not the JSON GitHub documents.
    case malformedResponse(String)

    public var description: String {
        switch self {
        case .unauthorized: "GitHub rejected the token (401)"
        case .forbidden(let message): "GitHub refused the request (403): \(message)"
        case .rateLimited(let seconds): "GitHub rate limit reached; retry after \(seconds) s"
        case .unavailable(let why): "GitHub is unavailable: \(why)"
        case .malformedResponse(let why): "GitHub sent an unexpected response: \(why)"
        }
    }
}
