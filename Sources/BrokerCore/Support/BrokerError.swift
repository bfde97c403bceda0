/// The one catalogue of error codes the broker answers with. Codes are stable: clients and
/// scripts match on them; `detail` is the human text (what generation-1 clients print).
/// Documented in `docs/errors.md`; keep the two in step.
public enum ErrorCode: String, Sendable, CaseIterable {
    // 400
    case invalidRequest = "invalid_request"
    case invalidUsername = "invalid_username"
    case invalidPassword = "invalid_password"
    case invalidOrganization = "invalid_organization"
    /// The HTTP message itself is broken: a bad chunk size, a body cut short, a
    /// `Transfer-Encoding` not ending in `chunked`.
    case invalidFraming = "invalid_framing"
    // 401: authenticate again
    case invalidCredentials = "invalid_credentials"
    case accountDisabled = "account_disabled"
    case invalidRefreshToken = "invalid_refresh_token"
    case refreshTokenReused = "refresh_token_reused"
    case sessionExpired = "session_expired"
    case missingToken = "missing_token"
    case invalidToken = "invalid_token"
    /// The account's credential or sessions changed (password reset, sign out everywhere, ...)
    /// while a login was checking the credential: the login starts no session.
    case credentialsChanged = "credentials_changed"
    // 403: authenticated, not allowed
    case unknownOrganization = "unknown_organization"
    case notAMember = "not_a_member"
    case forbidden = "forbidden"
    // 404, 405, 409, 413
    case notFound = "not_found"
    case methodNotAllowed = "method_not_allowed"
    case alreadyExists = "already_exists"
    case payloadTooLarge = "payload_too_large"
    case unsupportedMediaType = "unsupported_media_type"
    case conflict = "conflict"
    /// A cluster name or audience that another organization holds, a deleted organization left
    /// reserved, or that is a service audience where a cluster name is wanted.
    case audienceTaken = "audience_taken"
    // 429
    case tooManyAttempts = "too_many_attempts"
    // GitHub as an identity source
    case githubTokenInvalid = "github_token_invalid"
    case githubForbidden = "github_forbidden"
    case githubRateLimited = "github_rate_limited"
    case githubUnavailable = "github_unavailable"
    case githubBadResponse = "github_bad_response"
    /// The GitHub login is linked to an account recorded for another GitHub user id: the login
    /// was renamed and re-registered by someone else.
    case githubIdentityMismatch = "github_identity_mismatch"
    // 5xx
    case internalError = "internal_error"
    case unavailable = "unavailable"
    case auditUnavailable = "audit_unavailable"
    /// The database cannot be reached now (down, failing over, its pool exhausted): nothing was
    /// done; try again after `Retry-After`.
    case storeUnavailable = "store_unavailable"
    /// A transfer coding the broker does not implement (`gzip, chunked`): the client's doing,
    /// answered 501 as RFC 9112 section 6.1 asks.
    case unsupportedTransferCoding = "unsupported_transfer_coding"
    /// A generation-1 scaling call (`/api/org_num_nodes/...` and the like) to a broker without
    /// `provisioner_url`: scaling belongs to another component, which this broker does not know.
    case notImplemented = "not_implemented"
    /// The provisioner (`provisioner_url`) cannot be reached: refused, reset, no route.
    case provisionerUnavailable = "provisioner_unavailable"
    /// The provisioner answered something a generation-1 client cannot read: not HTTP, not a JSON
    /// object, or larger than the broker passes on.
    case provisionerBadResponse = "provisioner_bad_response"
    /// The provisioner did not answer within `provisioner_timeout`.
    case provisionerTimeout = "provisioner_timeout"

    /// The HTTP status this code is answered with on every route.
    public var httpStatus: Int {
        switch self {
        case .invalidRequest, .invalidUsername, .invalidPassword, .invalidOrganization, .invalidFraming: 400
        case .invalidCredentials, .accountDisabled, .invalidRefreshToken, .refreshTokenReused,
            .sessionExpired, .missingToken, .invalidToken, .credentialsChanged, .githubTokenInvalid,
            .githubIdentityMismatch:
            401
        case .unknownOrganization, .notAMember, .forbidden, .githubForbidden: 403
        case .notFound: 404
        case .methodNotAllowed: 405
        case .alreadyExists, .conflict, .audienceTaken: 409
        case .payloadTooLarge: 413
        case .unsupportedMediaType: 415
        case .tooManyAttempts: 429
        case .internalError: 500
        case .unsupportedTransferCoding, .notImplemented: 501
        case .githubBadResponse, .provisionerUnavailable, .provisionerBadResponse: 502
        case .unavailable, .auditUnavailable, .storeUnavailable, .githubRateLimited, .githubUnavailable: 503
        case .provisionerTimeout: 504
        }
    }

    /// A failure of the broker or of what it depends on, worth an error-level log line: a 5xx
    /// other than a 501, which says what this broker does not do (a transfer coding a client
    /// chose, scaling calls without a provisioner), not that something broke.
    public var isServerFailure: Bool {
        httpStatus >= 500 && httpStatus != 501
    }
}

/// An error meant for the caller: a stable code and a human explanation that never contains a
/// secret (no password, token, hash or key material).
///
/// ```swift
/// throw BrokerError(.notAMember, "alice has no active membership in org1")
/// ```
public struct BrokerError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var detail: String
    /// Whole seconds after which the caller may try again (sent as `Retry-After`).
    public var retryAfter: Int?
    /// The session a refusal concerns, when the broker could tell whose it is (a refresh token
    /// of a revoked session, a reused one), so that its audit line names it. Never answered to
    /// the caller, and not part of equality: it says whom the error is about, not what it is.
    public var session: AuditedSession?

    /// The detail with inputs each interface names its own way; `detail` spells them plainly.
    public var message: InterfaceMessage?

    public init(_ code: ErrorCode, _ detail: String, retryAfter: Int? = nil) {
        self.code = code
        self.detail = detail
        self.retryAfter = retryAfter
    }

    /// This error, marked as concerning `session`.
    public func concerning(_ session: AuditedSession?) -> BrokerError {
        var error = self
        error.session = error.session ?? session
        return error
    }

    public init(_ code: ErrorCode, phrased message: InterfaceMessage, retryAfter: Int? = nil) {
        self.init(code, message.description, retryAfter: retryAfter)
        self.message = message
    }

    /// The detail as an interface shows it, its inputs spelled by `spell`.
    public func detail(spelling spell: (InterfaceTerm) -> String) -> String {
        message?.spelled(spell) ?? detail
    }

    public var description: String { "\(code.rawValue): \(detail)" }

    public static func == (lhs: BrokerError, rhs: BrokerError) -> Bool {
        lhs.code == rhs.code && lhs.detail == rhs.detail && lhs.retryAfter == rhs.retryAfter
    }
}
