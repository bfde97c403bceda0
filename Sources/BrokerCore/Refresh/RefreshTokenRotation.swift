import BrokerCrypto
import Foundation

/// Opaque refresh tokens: 256 random bits, stored only as a SHA-256, single use, rotated on every
/// use. A used token presented again revokes its whole family, unless it comes inside the grace
/// window *and* its successor has not been used yet (two requests racing after a network retry):
/// then the same successor is returned. It is an HMAC of the presented token under a server
/// secret, so it is derived again instead of being stored in clear. Once the successor has been
/// used, its predecessor can only be in someone else's hands: handing the successor out again
/// (or anything after it) would give them the client's live session.
public struct RefreshTokenRotation: Sendable {
    public static let secretName = "refresh_successor_hmac"

    private let secret: StartupValue<[UInt8]>
    public let policy: SessionPolicy

    public init(secret: [UInt8], policy: SessionPolicy) {
        self.init(secret: StartupValue(Self.secretName, value: secret), policy: policy)
    }

    /// A rotation whose secret start-up loads (``BrokerServices/start()``); until then a renewal
    /// throws ``ServicesNotStarted``.
    public init(secret: StartupValue<[UInt8]>, policy: SessionPolicy) {
        self.secret = secret
        self.policy = policy
    }

    /// Loads the shared HMAC secret from the store, creating it on first use.
    public static func loadSecret(from store: any Store) async throws -> [UInt8] {
        let candidate = SecureRandom.bytes(32)
        return try await store.transaction { tx in
            try await tx.insertServerSecretIfAbsent(named: secretName, value: candidate)
        }
    }

    /// Loads the shared HMAC secret from where `keys` keeps server secrets (sealed beside a ring
    /// in the database), creating it on first use.
    public static func loadSecret(from store: any Store, beside keys: any KeyRingStorage) async throws -> [UInt8] {
        try await keys.serverSecret(named: secretName, store: store)
    }

    public static func newToken() -> String { Base64URL.encode(SecureRandom.bytes(32)) }

    /// A session's id (`sid`): random, URL-safe, safe to log.
    public static func newFamilyID() -> String { Base64URL.encode(SecureRandom.bytes(16)) }

    /// What is stored for a token: hex SHA-256 of its text.
    public static func hash(_ token: String) -> String { Digest.sha256Hex(token) }

    func successor(of presented: String) throws -> String {
        Base64URL.encode(Digest.hmacSHA256(key: try secret.get(), message: Array(presented.utf8)))
    }

    /// Starts a family for a login and returns its first refresh token. `user` is the account as
    /// the login read it: the family is recorded only if it is still so
    /// (``PresentedTokens/record(_:in:)``).
    public func startFamily(
        in tx: any StoreTransaction, for user: User, organizationID: Int64, methods: [AuthenticationMethod], client: ClientID,
        now: Date
    ) async throws -> (family: RefreshFamily, token: String, expiresAt: Date) {
        let family = RefreshFamily(
            id: Self.newFamilyID(), userID: user.id, organizationID: organizationID,
            authenticatedAt: now, expiresAt: now.addingTimeInterval(TimeInterval(policy.sessionMaxLifetime)),
            authenticationMethods: methods.map(\.rawValue), accountVersions: user.versions, client: client)
        try await PresentedTokens.record(family, in: tx)
        let token = Self.newToken()
        let expiresAt = min(now.addingTimeInterval(TimeInterval(policy.refreshLifetime)), family.expiresAt)
        try await tx.insertRefreshToken(
            RefreshTokenRecord(tokenHash: Self.hash(token), familyID: family.id, issuedAt: now, expiresAt: expiresAt))
        return (family, token, expiresAt)
    }

    /// The result of presenting a refresh token.
    public enum Outcome<Admission: Sendable>: Sendable {
        /// The token was valid (or a racing duplicate inside the grace window).
        case rotated(family: RefreshFamily, successor: String, successorExpiresAt: Date, admission: Admission)
        /// Unknown, expired, or of a revoked or expired family (then the error names the
        /// session: ``BrokerError/session``).
        case rejected(BrokerError)
        /// A used token was presented again: the family has been revoked (commit this!).
        case reused(familyID: String, session: AuditedSession)
    }

    /// Exchanges `presented` for its successor. `admit` re-checks the account and membership
    /// (as ``RenewalSnapshot`` read them, with the token locked) before anything is written (an
    /// error it throws leaves the token unused); what it returns is handed back with the
    /// successor. A refusal of a token of a known session names the session
    /// (``BrokerError/session``), for its audit line.
    public func rotate<Admission: Sendable>(
        _ presented: String, in tx: any StoreTransaction, now: Date,
        admit: @Sendable (RenewalSnapshot) async throws -> Admission
    ) async throws -> Outcome<Admission> {
        let renewal = try await tx.renewal(ofTokenHash: Self.hash(presented))
        return try await rotate(presented, read: renewal, in: tx, now: now, admit: admit)
    }

    /// ``rotate(_:in:now:admit:)`` from the renewal of `presented` as `tx` has read it already,
    /// locked (``StoreTransaction/renewal(ofTokenHash:counting:)``; `nil`: no such token), such as
    /// ``SessionRefreshThrottle/admitRenewal(ofTokenHash:in:)`` reads it.
    public func rotate<Admission: Sendable>(
        _ presented: String, read renewal: RenewalSnapshot?, in tx: any StoreTransaction, now: Date,
        admit: @Sendable (RenewalSnapshot) async throws -> Admission
    ) async throws -> Outcome<Admission> {
        guard let renewal, renewal.token.tokenHash == Self.hash(presented) else {
            return .rejected(BrokerError(.invalidRefreshToken, "Token is invalid or expired"))
        }
        let (record, family) = (renewal.token, renewal.family)
        func admitting() async throws -> Admission {
            do {
                return try await admit(renewal)
            } catch let error as BrokerError {
                throw error.concerning(renewal.session)
            }
        }
        switch PresentedTokens.sessionRefusal(family, now: now) {
        case .sessionRevoked?:
            return .rejected(
                BrokerError(.invalidRefreshToken, "Token is invalid or expired (session revoked)").concerning(renewal.session))
        case .sessionExpired?:
            return .rejected(
                BrokerError(.sessionExpired, "session has reached its maximum lifetime; log in again").concerning(renewal.session))
        case let refusal?:
            return .rejected(refusal.error.concerning(renewal.session))
        case nil:
            break
        }
        let successor = try successor(of: presented)
        let successorHash = Self.hash(successor)
        if let usedAt = record.usedAt {
            // A grace of 0 is none: across replicas a racing duplicate's clock may even read
            // before the winner's `usedAt`, which a bare comparison would take for "within".
            let withinGrace =
                policy.refreshReuseGrace > 0 && now.timeIntervalSince(usedAt) <= TimeInterval(policy.refreshReuseGrace)
            if withinGrace, let existing = try await tx.refreshToken(hash: successorHash), existing.usedAt == nil {
                let admission = try await admitting()
                return .rotated(
                    family: family, successor: successor, successorExpiresAt: existing.expiresAt, admission: admission)
            }
            try await tx.revokeRefreshFamily(id: family.id, at: now, reason: "refresh token reused")
            return .reused(familyID: family.id, session: renewal.session)
        }
        if now >= record.expiresAt {
            return .rejected(BrokerError(.invalidRefreshToken, "Token is invalid or expired").concerning(renewal.session))
        }
        let admission = try await admitting()
        let expiresAt = min(now.addingTimeInterval(TimeInterval(policy.refreshLifetime)), family.expiresAt)
        try await tx.markRefreshTokenUsed(
            hash: record.tokenHash, at: now,
            insertingSuccessor: RefreshTokenRecord(
                tokenHash: successorHash, familyID: family.id, issuedAt: now, expiresAt: expiresAt))
        return .rotated(family: family, successor: successor, successorExpiresAt: expiresAt, admission: admission)
    }

    /// Revokes the family of `presented` and returns it; nil for an unknown token.
    public func revokeFamily(
        of presented: String, in tx: any StoreTransaction, now: Date, reason: String
    ) async throws -> RefreshFamily? {
        guard let record = try await tx.refreshToken(hash: Self.hash(presented)),
            let family = try await tx.refreshFamily(id: record.familyID)
        else { return nil }
        try await tx.revokeRefreshFamily(id: family.id, at: now, reason: reason)
        return family
    }
}
