import Foundation

/// RFC 7662 introspection and RFC 7009 revocation for the broker's tokens. Introspection is
/// the online answer for gateways that want one: unlike an offline check it sees disabled
/// accounts, revoked sessions and revoked tokens at once, and memberships as they are now: a
/// token whose organization roles (or, for a broker session token, global role) are no longer
/// the holder's current ones is inactive, as `membership_status` says at the same moment
/// (``OrganizationAccess/claimsStillHold(_:user:isSessionToken:githubMapped:tx:)``).
///
/// ```swift
/// switch try await introspection.introspect(token, by: principal, context: origin) {
/// case .inactive: ...
/// case .access(let claims): ...
/// case .refresh(let family, let record, let user): ...
/// }
/// ```
public struct TokenIntrospection: Sendable {
    public let store: any Store
    public let verifier: TokenVerifier
    public let clock: any WallClock
    /// Organizations a `github_orgs` mapping admits to: GitHub may grant their memberships.
    public let githubMappedOrganizations: Set<String>
    /// Where revocations and introspections are recorded.
    public let flows: FlowAudit

    public init(
        store: any Store, verifier: TokenVerifier, clock: any WallClock, flows: FlowAudit,
        githubMappedOrganizations: Set<String> = []
    ) {
        self.flows = flows
        self.store = store
        self.verifier = verifier
        self.clock = clock
        self.githubMappedOrganizations = githubMappedOrganizations
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

    /// What `token` is right now, for a holder allowed to ask
    /// (``BrokerSessionService/Principal/requireIntrospection()``, 403 otherwise, unaudited);
    /// audited as `introspect` with the introspector as the actor.
    public func introspect(
        _ token: String, by introspector: BrokerSessionService.Principal, context: AuditContext = .none
    ) async throws -> Answer {
        try introspector.requireIntrospection()
        return try await flows.run(
            .introspect, context,
            attempt: AuditSubject(actor: introspector.user.username, target: AuditEvent.tokenReference(token))
        ) {
            try await answer(token)
        } success: { answer in
            // The introspector stays the actor; the line names the token's session.
            switch answer {
            case .inactive:
                AuditSubject(reason: "inactive")
            case .access(let claims):
                AuditSubject(
                    organization: AuditedSession(claims).organization, session: claims.sessionID,
                    target: "jti:\(claims.tokenID)", reason: "active")
            case .refresh(let family, _, _):
                AuditSubject(session: family.id, reason: "active")
            }
        }
    }

    private func answer(_ token: String) async throws -> Answer {
        let now = clock.now()
        if Self.looksLikeJWT(token) {
            guard let claims = try? verifier.verify(token, allowSessionTokens: true) else { return .inactive }
            let isSessionToken = claims.audience.contains(verifier.issuer)
            let active = try await store.read { [githubMappedOrganizations] tx -> Bool in
                guard case .success(let (user, _)) = try await PresentedTokens.standing(of: claims, in: tx, now: now) else {
                    return false
                }
                return try await OrganizationAccess.claimsStillHold(
                    claims, user: user, isSessionToken: isSessionToken, githubMapped: githubMappedOrganizations, tx: tx)
            }
            return active ? .access(claims) : .inactive
        }
        return try await store.read { tx in
            guard let record = try await tx.refreshToken(hash: RefreshTokenRotation.hash(token)),
                record.usedAt == nil, now < record.expiresAt,
                let family = try await tx.refreshFamily(id: record.familyID),
                PresentedTokens.sessionRefusal(family, now: now) == nil,
                let user = try await tx.user(id: family.userID), PresentedTokens.accountRefusal(user, of: family) == nil
            else { return .inactive }
            if let organizationID = family.organizationID {
                // The refresh would fail without the membership (unless GitHub grants it).
                guard let organization = try await tx.organization(id: organizationID) else { return .inactive }
                let viaGitHub = AuthenticationMethod.includesGitHub(family.authenticationMethods)
                if !(viaGitHub && githubMappedOrganizations.contains(organization.name)),
                    try await OrganizationAccess.currentRole(ofUser: user.id, in: organization.name, tx: tx) == nil
                {
                    return .inactive
                }
            }
            return .refresh(family: family, token: record, user: user)
        }
    }

    /// Revokes a refresh token's whole session, or one access token (remembered by `jti` until
    /// it expires; offline gateways accept it until then, introspection no longer does). A
    /// token that is its own renewal credential (generation 2, renewed at `/auth/refresh`) or
    /// a broker session token also ends its session: revoking it is logging out, and a sibling
    /// renewed before the revocation must not live on. A generation-1 access token ends alone:
    /// its refresh token is revoked separately. Unknown and invalid tokens are ignored, as
    /// RFC 7009 requires. Returns what was revoked.
    /// Audited as `token.revoke`.
    @discardableResult
    public func revoke(_ token: String, context: AuditContext = .none) async throws -> Revocation {
        try await flows.run(.tokenRevoke, context, attempt: AuditSubject(target: AuditEvent.tokenReference(token))) {
            try await revokeToken(token)
        } success: { revocation in
            switch revocation {
            case .nothing:
                return AuditSubject(reason: "unknown_or_invalid_token")
            case .accessToken(let jti, let session, let endedSession):
                var subject = session.auditSubject
                (subject.target, subject.reason) = ("jti:\(jti)", endedSession ? "access_token session_ended" : "access_token")
                return subject
            case .session(let session):
                var subject = session.auditSubject
                subject.reason = "refresh_token session_ended"
                return subject
            }
        }
    }

    private func revokeToken(_ token: String) async throws -> Revocation {
        let now = clock.now()
        if Self.looksLikeJWT(token) {
            guard let claims = try? verifier.verify(token, allowSessionTokens: true) else { return .nothing }
            let endedSession = try await store.transaction { tx -> String? in
                try await tx.insertRevokedAccessToken(
                    jti: claims.tokenID, expiresAt: Date(timeIntervalSince1970: TimeInterval(claims.expiresAt)))
                try await tx.pruneRevokedAccessTokens(before: now.addingTimeInterval(-TimeInterval(verifier.leeway)))
                guard let sessionID = claims.sessionID, let family = try await tx.refreshFamily(id: sessionID),
                    family.userID == claims.userID, family.organizationID == nil
                else { return nil }
                try await tx.revokeRefreshFamily(id: family.id, at: now, reason: "revoked")
                return family.id
            }
            return .accessToken(jti: claims.tokenID, of: AuditedSession(claims), endedSession: endedSession != nil)
        }
        let ended = try await store.transaction { tx -> AuditedSession? in
            guard let record = try await tx.refreshToken(hash: RefreshTokenRotation.hash(token)),
                let family = try await tx.refreshFamily(id: record.familyID)
            else { return nil }
            try await tx.revokeRefreshFamily(id: family.id, at: now, reason: "revoked")
            return try await AuditedSession.of(family, in: tx)
        }
        return ended.map { .session($0) } ?? .nothing
    }

    public enum Revocation: Sendable, Equatable {
        case nothing
        /// One access token, of the session `of`; `endedSession`: the session ended with it (see
        /// ``TokenIntrospection/revoke(_:)``).
        case accessToken(jti: String, of: AuditedSession, endedSession: Bool)
        /// A refresh token's whole session.
        case session(AuditedSession)
    }
}
