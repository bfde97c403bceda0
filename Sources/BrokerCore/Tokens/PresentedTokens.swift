import BrokerValidator
import Foundation

/// The one rule for whether a broker token presented *to the broker* is still good. A signature
/// and an expiry are what an offline gateway can check; the broker also knows what happened since
/// the token was signed, and every path that accepts a broker token (renewal at `/auth/refresh`,
/// `membership_status`, introspection, the admin and membership API) asks this type:
///
/// - the token itself was not revoked (`/oauth/revoke`, by `jti`);
/// - its session (`sid`) exists, was not revoked (logout, "sign out everywhere", password reset,
///   reuse detection) and has not outlived `session_max_lifetime`;
/// - its account exists and is enabled;
/// - the account still has the credential and session versions the session started under
///   (``AccountVersions``): a password reset, sign out everywhere or disabling the account
///   advances them, so nothing started before comes back, not even after re-enabling.
///
/// Refresh tokens are opaque and have no claims: ``RefreshTokenRotation`` and introspection
/// check their family with ``sessionRefusal(_:now:)`` and their account with
/// ``accountRefusal(_:of:)``.
///
/// Sessions are recorded with ``record(_:in:)`` only: in the transaction that inserts the
/// session it re-reads the account and refuses a login whose credential was replaced (or whose
/// account's sessions were ended) while it was being checked.
///
/// ```swift
/// let presented = try await PresentedTokens(store: store, verifier: verifier, clock: clock).accept(bearer)
/// presented.user  // the account as stored now
/// ```
public struct PresentedTokens: Sendable {
    public let store: any Store
    public let verifier: TokenVerifier
    public let clock: any WallClock

    public init(store: any Store, verifier: TokenVerifier, clock: any WallClock) {
        self.store = store
        self.verifier = verifier
        self.clock = clock
    }

    /// Why a token that verifies offline is refused online.
    public enum Refusal: Error, Sendable, Equatable {
        /// Its `jti` was revoked.
        case tokenRevoked
        /// Its session was revoked, or no longer exists.
        case sessionRevoked
        /// Its session reached `session_max_lifetime`.
        case sessionExpired
        /// Its account is disabled or gone.
        case accountDisabled

        public var error: BrokerError {
            switch self {
            case .tokenRevoked: BrokerError(.invalidToken, "this token was revoked")
            case .sessionRevoked: BrokerError(.invalidToken, "the session of this token has ended; log in again")
            case .sessionExpired:
                BrokerError(.sessionExpired, "the session has reached its maximum lifetime; log in again")
            case .accountDisabled: BrokerError(.accountDisabled, "this account is disabled")
            }
        }
    }

    /// A token that is good right now, with its account as stored now.
    public struct Accepted: Sendable {
        public var claims: AccessTokenClaims
        public var user: User
        /// The token's session; `nil` only for tokens signed before sessions were recorded for
        /// every login (generation-2 and broker session tokens of older brokers).
        public var session: RefreshFamily?
    }

    /// What the store says about verified claims: the account, or why the token is refused.
    public static func standing(
        of claims: AccessTokenClaims, in tx: any StoreTransaction, now: Date
    ) async throws -> Result<(User, RefreshFamily?), Refusal> {
        if try await tx.isAccessTokenRevoked(jti: claims.tokenID) { return .failure(.tokenRevoked) }
        var session: RefreshFamily?
        if let sessionID = claims.sessionID {
            guard let family = try await tx.refreshFamily(id: sessionID), family.userID == claims.userID else {
                return .failure(.sessionRevoked)
            }
            if let refusal = sessionRefusal(family, now: now) { return .failure(refusal) }
            session = family
        }
        guard let user = try await tx.user(id: claims.userID), user.isActive else { return .failure(.accountDisabled) }
        if let session, let refusal = accountRefusal(user, of: session) { return .failure(refusal) }
        return .success((user, session))
    }

    /// Whether a session can still yield or vouch for tokens.
    public static func sessionRefusal(_ family: RefreshFamily, now: Date) -> Refusal? {
        if family.revokedAt != nil { return .sessionRevoked }
        if now >= family.expiresAt { return .sessionExpired }
        return nil
    }

    /// Whether the account (as stored now) still stands behind a session: it exists, is enabled
    /// and has the versions the session started under. A session of an earlier credential or
    /// session version has ended, whatever its row says.
    public static func accountRefusal(_ user: User?, of family: RefreshFamily) -> Refusal? {
        guard let user, user.id == family.userID, user.isActive else { return .accountDisabled }
        guard user.versions == family.accountVersions else { return .sessionRevoked }
        return nil
    }

    /// Verifies `token` (see ``TokenVerifier/verify(_:audience:allowSessionTokens:)``) and applies
    /// the rule above.
    /// - Throws: 401 ``ErrorCode/invalidToken`` for a bad, expired or revoked token or session;
    ///   401 ``ErrorCode/sessionExpired``; 401 ``ErrorCode/accountDisabled``.
    public func accept(_ token: String, audience: String? = nil, allowSessionTokens: Bool = false) async throws -> Accepted {
        let claims: AccessTokenClaims
        do {
            claims = try verifier.verify(token, audience: audience, allowSessionTokens: allowSessionTokens)
        } catch {
            throw BrokerError(.invalidToken, error.description)
        }
        let now = clock.now()
        let standing = try await store.read { tx in try await Self.standing(of: claims, in: tx, now: now) }
        switch standing {
        case .success(let (user, session)): return Accepted(claims: claims, user: user, session: session)
        case .failure(let refusal): throw refusal.error
        }
    }

    /// Records the session of a login whose tokens are not renewed with refresh tokens
    /// (generation 2, broker sessions): its id goes into the tokens as `sid`. `user` is the
    /// account as the login read it, before checking the credential (see ``record(_:in:)``).
    public static func startSession(
        in store: any Store, for user: User, scope: SessionScope, methods: [AuthenticationMethod], client: ClientID,
        authenticatedAt: Date, expiresAt: Date
    ) async throws -> RefreshFamily {
        let family = RefreshFamily(
            id: RefreshTokenRotation.newFamilyID(), userID: user.id, scope: scope, authenticatedAt: authenticatedAt,
            expiresAt: expiresAt, authenticationMethods: methods.map(\.rawValue), accountVersions: user.versions,
            client: client)
        try await store.transaction { tx in try await record(family, in: tx) }
        return family
    }

    /// Inserts a login's session, in the caller's transaction, only if the account is still as
    /// the login saw it: enabled, with the credential and session versions the login read
    /// together with the credential it checked. A password reset, a changed GitHub link, sign
    /// out everywhere or a disable that committed while the login was verifying leaves the
    /// login without a session.
    /// - Throws: 401 ``ErrorCode/credentialsChanged`` (log in again) or 401
    ///   ``ErrorCode/accountDisabled``.
    public static func record(_ family: RefreshFamily, in tx: any StoreTransaction) async throws {
        switch accountRefusal(try await tx.user(id: family.userID), of: family) {
        case .accountDisabled?:
            throw BrokerError(.accountDisabled, "this account is disabled")
        case .some:
            throw BrokerError(
                .credentialsChanged,
                "the account's password or sessions changed while this login was being checked; log in again")
        case nil:
            try await tx.insertRefreshFamily(family)
        }
    }
}
