import Foundation

/// What a session's tokens are for: this decides how they are renewed, not whether revocation
/// reaches them (it reaches every kind).
public enum SessionScope: Sendable, Equatable {
    /// Generation 1: one organization's cluster; renewed with rotating refresh tokens.
    case organization(id: Int64)
    /// Generation 2: every cluster the holder may use; the token itself is renewed at
    /// `/auth/refresh`, so the family holds no refresh tokens.
    case allClusters
    /// A broker session token (admin and membership API); never renewed.
    case broker

    /// The stored spelling (`refresh_families.kind`).
    public var kind: String {
        switch self {
        case .organization: "organization"
        case .allClusters: "all_clusters"
        case .broker: "broker"
        }
    }
}

/// One login and everything descended from it: a session. Its id is the `sid` of every token the
/// login yields; revoking it refuses them all wherever the broker is asked (renewal,
/// introspection, the admin and membership API). A generation-1 session also holds the refresh
/// tokens; reuse of any used member revokes the family.
public struct RefreshFamily: Sendable, Equatable {
    /// Random, URL-safe; safe to log.
    public var id: String
    public var userID: Int64
    public var scope: SessionScope
    /// When the login that started the family happened (the tokens' `auth_time`).
    public var authenticatedAt: Date
    /// `authenticatedAt + session_max_lifetime`: no token of the family is valid past it.
    public var expiresAt: Date
    /// The authentication methods of the login (`amr`), e.g. `["pwd"]`.
    public var authenticationMethods: [String]
    public var revokedAt: Date?
    public var revocationReason: String?
    /// The account's versions the login read before checking its credential. The session is
    /// recorded only if they are still the account's, and is good only while they stay so
    /// (see ``PresentedTokens``).
    public var accountVersions: AccountVersions
    /// Where the login came from, as its request said (``SessionOrigin``), to show the account's
    /// holder beside the session; `nil` when nothing was recorded (sessions from before
    /// migration 14, and logins that passed none). An origin of two `nil`s reads back as `nil`.
    public var origin: SessionOrigin?
    /// The OAuth client the session's tokens are issued to (``ClientID``); `nil` for sessions
    /// recorded before migration 16 (see ``client(slideRule:)``).
    public var client: ClientID?

    /// The session's client; a session recorded before the broker kept it came from the
    /// SlideRule routes, or is the broker's own.
    public func client(slideRule: ClientID) -> ClientID {
        client ?? (scope == .broker ? .broker : slideRule)
    }

    /// The organization of a generation-1 session; `nil` for the other scopes.
    public var organizationID: Int64? {
        if case .organization(let id) = scope { id } else { nil }
    }

    public init(
        id: String, userID: Int64, scope: SessionScope, authenticatedAt: Date, expiresAt: Date,
        authenticationMethods: [String], accountVersions: AccountVersions, revokedAt: Date? = nil,
        revocationReason: String? = nil, origin: SessionOrigin? = nil, client: ClientID? = nil
    ) {
        self.client = client
        self.accountVersions = accountVersions
        self.id = id
        self.userID = userID
        self.scope = scope
        self.authenticatedAt = authenticatedAt
        self.expiresAt = expiresAt
        self.authenticationMethods = authenticationMethods
        self.revokedAt = revokedAt
        self.revocationReason = revocationReason
        self.origin = origin
    }

    /// A generation-1 session of one organization.
    public init(
        id: String, userID: Int64, organizationID: Int64, authenticatedAt: Date, expiresAt: Date,
        authenticationMethods: [String], accountVersions: AccountVersions, revokedAt: Date? = nil,
        revocationReason: String? = nil, origin: SessionOrigin? = nil, client: ClientID? = nil
    ) {
        self.init(
            id: id, userID: userID, scope: .organization(id: organizationID), authenticatedAt: authenticatedAt,
            expiresAt: expiresAt, authenticationMethods: authenticationMethods, accountVersions: accountVersions,
            revokedAt: revokedAt, revocationReason: revocationReason, origin: origin, client: client)
    }
}

/// Where a session was started from, as the login's request said: the client's address and its
/// `User-Agent`. Shown to the account's holder beside each of their sessions, so that they can
/// tell their own browsers and clients from someone else's; never used to decide anything (a
/// client says what it likes in both).
public struct SessionOrigin: Sendable, Equatable {
    /// The most of a `User-Agent` kept: enough to name a browser and its platform, and a bound
    /// on what any client may make the store keep per session.
    public static let userAgentLimit = 200

    public var clientIP: String?
    /// At most ``userAgentLimit`` Unicode scalars, without control characters.
    public var userAgent: String?

    /// Keeps the first ``userAgentLimit`` scalars of `userAgent` once its control characters
    /// (category Cc, and the line and paragraph separators U+2028, U+2029) are removed: the
    /// value comes from any client and is shown on a page, where a newline or an escape
    /// sequence could pass for something the broker wrote. An empty value is `nil`.
    public init(clientIP: String?, userAgent: String?) {
        self.clientIP = clientIP?.isEmpty == false ? clientIP : nil
        self.userAgent = userAgent.flatMap(Self.shown(userAgent:))
    }

    private static func shown(userAgent: String) -> String? {
        var kept = String.UnicodeScalarView()
        var count = 0
        for scalar in userAgent.unicodeScalars {
            guard count < userAgentLimit else { break }
            if scalar.properties.generalCategory == .control || scalar == "\u{2028}" || scalar == "\u{2029}" { continue }
            kept.append(scalar)
            count += 1
        }
        return count == 0 ? nil : String(kept)
    }
}

/// A browser's portal session as one read finds it (``StoreTransaction/portalSession(idHash:)``):
/// the `.broker` family it is, when it was last seen, and the account, so that deciding whether
/// the session still holds (``PresentedTokens``' rules) needs no second read.
public struct PortalSessionSnapshot: Sendable, Equatable {
    /// SHA-256 (hex) of the browser's cookie value; the value itself is never stored.
    public var idHash: String
    public var family: RefreshFamily
    public var lastSeenAt: Date
    /// nil only if the account is gone (cannot happen with the cascade, but reads must not trap).
    public var user: User?

    public init(idHash: String, family: RefreshFamily, lastSeenAt: Date, user: User?) {
        self.idHash = idHash
        self.family = family
        self.lastSeenAt = lastSeenAt
        self.user = user
    }
}

/// One refresh token, known only by the SHA-256 of its value (hex).
public struct RefreshTokenRecord: Sendable, Equatable {
    public var tokenHash: String
    public var familyID: String
    public var issuedAt: Date
    public var expiresAt: Date
    /// Set when the token was exchanged; a second exchange after the grace window is reuse.
    public var usedAt: Date?

    public init(tokenHash: String, familyID: String, issuedAt: Date, expiresAt: Date, usedAt: Date? = nil) {
        self.tokenHash = tokenHash
        self.familyID = familyID
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.usedAt = usedAt
    }
}

/// The renewals of a session that a renewal throttle shared by replicas counts
/// (``SessionRefreshThrottle``): the first uses of its refresh tokens after ``after``. The session
/// is at its limit once ``limit`` of them fall in the window.
public struct RenewalWindow: Sendable, Equatable {
    public var after: Date
    /// At least 1.
    public var limit: Int

    public init(after: Date, limit: Int) {
        precondition(limit > 0, "a renewal window must admit something")
        self.after = after
        self.limit = limit
    }
}

/// What the renewal of a refresh token reads, in one piece
/// (``StoreTransaction/renewal(ofTokenHash:counting:)``): the token, its family, the account, and
/// the family's organization with the account's membership in it.
public struct RenewalSnapshot: Sendable, Equatable {
    public var token: RefreshTokenRecord
    public var family: RefreshFamily
    /// `nil` only if the account is gone.
    public var user: User?
    /// The family's organization; `nil` for a session of no organization or one that is gone.
    public var organization: Organization?
    /// The account's membership in ``organization``, active or not.
    public var membership: Membership?
    /// Read with a ``RenewalWindow``: the first use of the session's `limit`-th most recent
    /// renewal within it, the oldest one the limit counts; `nil` while the session had fewer
    /// renewals in the window, and always without a window.
    public var limitingRenewal: Date?

    public init(
        token: RefreshTokenRecord, family: RefreshFamily, user: User?, organization: Organization?, membership: Membership?,
        limitingRenewal: Date? = nil
    ) {
        self.token = token
        self.family = family
        self.user = user
        self.organization = organization
        self.membership = membership
        self.limitingRenewal = limitingRenewal
    }

    /// Whose session this is, for its audit line.
    public var session: AuditedSession {
        AuditedSession(username: user?.username, organization: organization?.name, sessionID: family.id)
    }
}
