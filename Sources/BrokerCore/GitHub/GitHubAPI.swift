/// The calls the broker makes to GitHub (REST API, device flow and web flow), in engine-independent
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
    /// Exchanges an OAuth web-flow authorization code for the user's access token (RFC 6749
    /// section 4.1.3, with PKCE's code_verifier, RFC 7636).
    ///
    /// `POST {web}/login/oauth/access_token` with the configured client id and secret.
    /// `redirectURI` must be the one the authorization was asked with, `codeVerifier` the
    /// verifier whose S256 challenge it carried (``GitHubWebFlow``).
    /// - Throws: ``GitHubError/authorizationCodeRejected(_:)`` for a code GitHub does not accept
    ///   (unknown, expired, used, or not matching the verifier): the user's doing, or an
    ///   attacker's, never GitHub's; ``GitHubError/unavailable(_:)`` for a refusal of the
    ///   broker's own settings (client credentials, redirect URI) and when the API in use has no
    ///   web flow (the protocol's default).
    func exchangeAuthorizationCode(code: String, redirectURI: String, codeVerifier: String) async throws(GitHubError)
        -> String
}

extension GitHubAPI {
    /// No web flow: an API that does not implement it (a test double, a benchmark's stub)
    /// answers as GitHub out of reach would, so that a caller needs no case of its own for it.
    public func exchangeAuthorizationCode(code: String, redirectURI: String, codeVerifier: String)
        async throws(GitHubError) -> String
    {
        throw .unavailable("the OAuth web flow is not available from \(type(of: self))")
    }
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
    /// The web flow's authorization code was refused (`bad_verification_code`): unknown,
    /// expired, already exchanged, or its PKCE verifier does not match. Whoever brought the
    /// code (the user, or an attacker replaying one) starts again; GitHub is fine. The OAuth
    /// error code GitHub gave.
    case authorizationCodeRejected(String)

    public var description: String {
        switch self {
        case .unauthorized: "GitHub rejected the token (401)"
        case .forbidden(let message): "GitHub refused the request (403): \(message)"
        case .rateLimited(let seconds): "GitHub rate limit reached; retry after \(seconds) s"
        case .unavailable(let why): "GitHub is unavailable: \(why)"
        case .malformedResponse(let why): "GitHub sent an unexpected response: \(why)"
        case .authorizationCodeRejected(let error): "GitHub refused the authorization code (\(error))"
        }
    }
}
