import Foundation

/// RFC 7662 introspection and RFC 7009 revocation for the broker's tokens. Introspection is
/// the online answer for gateways that want one: unlike an offline check it sees disabled
/// accounts, revoked sessions and revoked tokens at once.
///
/// ```swift
/// switch try await introspection.introspect(token) {
/// case .inactive: ...
/// case .access(let claims): ...
/// case .refresh(let family, let record, let user): ...
/// }
/// ```
public struct TokenIntrospection: Sendable {
    public let store: any Store
    public let verifier: TokenVerifier
    public let clock: any WallClock

    public init(store: any Store, verifier: TokenVerifier, clock: any WallClock) {
        self.store = store
        self.verifier = verifier
        self.clock = clock
    }

    public enum Answer: Sendable {
        case inactive
        /// An access or broker session token, valid right now.
        case access(AccessTokenClaims)
        /// A refresh token that would be accepted right now.
        case refresh(family: RefreshFamily, token: RefreshTokenRecord, user: User)
    }

    /// A JWT has two dots; our refresh tokens are base64url without any.
    static func looksLikeJWT(_ token: String) -> Bool { token.utf8.contains(UInt8(ascii: ".")) }

    public func introspect(_ token: String) async throws -> Answer {
        let now = clock.now()
        if Self.looksLikeJWT(token) {
            guard let claims = try? verifier.verify(token, allowSessionTokens: true) else { return .inactive }
            let active = try await store.read { tx in
                guard let user = try await tx.user(id: claims.userID), user.isActive,
                    try await !tx.isAccessTokenRevoked(jti: claims.tokenID)
                else { return false }
                guard let sessionID = claims.sessionID else { return true }
                guard let family = try await tx.refreshFamily(id: sessionID) else { return false }
                return family.revokedAt == nil && now < family.expiresAt
            }
            return active ? .access(claims) : .inactive
        }
        return try await store.read { tx in
            guard let record = try await tx.refreshToken(hash: RefreshTokenRotation.hash(token)),
                record.usedAt == nil, now < record.expiresAt,
                let family = try await tx.refreshFamily(id: record.familyID),
                family.revokedAt == nil, now < family.expiresAt,
                let user = try await tx.user(id: family.userID), user.isActive
            else { return .inactive }
            return .refresh(family: family, token: record, user: user)
        }
    }

    /// Revokes a refresh token's whole session, or one access token (remembered by `jti` until
    /// it expires; offline gateways accept it until then, introspection no longer does).
    /// Unknown and invalid tokens are ignored, as RFC 7009 requires. Returns what was revoked.
    @discardableResult
    public func revoke(_ token: String) async throws -> Revocation {
        let now = clock.now()
        if Self.looksLikeJWT(token) {
            guard let claims = try? verifier.verify(token, allowSessionTokens: true) else { return .nothing }
            try await store.transaction { tx in
                try await tx.insertRevokedAccessToken(
                    jti: claims.tokenID, expiresAt: Date(timeIntervalSince1970: TimeInterval(claims.expiresAt)))
                try await tx.pruneRevokedAccessTokens(before: now.addingTimeInterval(-TimeInterval(verifier.leeway)))
            }
            return .accessToken(jti: claims.tokenID, userID: claims.userID)
        }
        let family = try await store.transaction { tx -> RefreshFamily? in
            guard let record = try await tx.refreshToken(hash: RefreshTokenRotation.hash(token)),
                let family = try await tx.refreshFamily(id: record.familyID)
            else { return nil }
            try await tx.revokeRefreshFamily(id: family.id, at: now, reason: "revoked")
            return family
        }
        return family.map { .session(familyID: $0.id, userID: $0.userID) } ?? .nothing
    }

    public enum Revocation: Sendable, Equatable {
        case nothing
        case accessToken(jti: String, userID: Int64)
        case session(familyID: String, userID: Int64)
    }
}
