import Foundation

/// Every refresh token descended from one login. Reuse of any used member revokes the family.
public struct RefreshFamily: Sendable, Equatable {
    /// Random, URL-safe; safe to log.
    public var id: String
    public var userID: Int64
    public var organizationID: Int64
    /// When the login that started the family happened (the tokens' `auth_time`).
    public var authenticatedAt: Date
    /// `authenticatedAt + session_max_lifetime`: no token of the family is valid past it.
    public var expiresAt: Date
    /// The authentication methods of the login (`amr`), e.g. `["pwd"]`.
    public var authenticationMethods: [String]
    public var revokedAt: Date?
    public var revocationReason: String?

    public init(
        id: String, userID: Int64, organizationID: Int64, authenticatedAt: Date, expiresAt: Date,
        authenticationMethods: [String], revokedAt: Date? = nil, revocationReason: String? = nil
    ) {
        self.id = id
        self.userID = userID
        self.organizationID = organizationID
        self.authenticatedAt = authenticatedAt
        self.expiresAt = expiresAt
        self.authenticationMethods = authenticationMethods
        self.revokedAt = revokedAt
        self.revocationReason = revocationReason
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
