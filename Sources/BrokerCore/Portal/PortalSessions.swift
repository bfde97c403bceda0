import BrokerCrypto
import Foundation
import Logging

/// How long a browser stays signed in to the portal.
public struct PortalSessionPolicy: Sendable, Equatable {
    /// Seconds from the sign-in after which the session ends, whatever the browser does.
    public var lifetime: Int
    /// Seconds without a request after which the session ends.
    public var idleTimeout: Int
    /// Seconds between two writes of a session's `last_seen_at`: at most one write a minute per
    /// browser, so the idle timeout is exact to within this much.
    public var touchInterval: Int

    public init(lifetime: Int, idleTimeout: Int, touchInterval: Int = 60) {
        self.lifetime = lifetime
        self.idleTimeout = idleTimeout
        self.touchInterval = touchInterval
    }

    /// `portal_session_lifetime` within `session_max_lifetime`, `portal_idle_timeout` within that.
    public init(_ configuration: BrokerConfiguration) {
        let lifetime = min(configuration.portalSessionLifetime, configuration.sessionMaxLifetime)
        self.init(lifetime: lifetime, idleTimeout: min(configuration.portalIdleTimeout, lifetime))
    }
}

/// A browser's live session at the portal, with its account as stored now.
public struct PortalSession: Sendable, Equatable {
    public var user: User
    /// The `.broker` session behind the browser: every revocation the API knows ends it too.
    public var family: RefreshFamily
    /// The SHA-256 (hex) of the cookie: what the store keys the session by, and what the
    /// session's CSRF token is bound to. Never the cookie itself.
    public var idHash: String

    public var actor: AdministrativeActor { AdministrativeActor(user: user) }
}

/// A session just started: the cookie value goes to the browser once and is never stored.
public struct PortalSessionStart: Sendable {
    public var cookie: String
    public var session: PortalSession

    /// The `session.login` line of the sign-in that started it: the account, the session, the
    /// cookie by its hash prefix (never the cookie), and `reason` (how, or the global role).
    public func auditSubject(reason: String?) -> AuditSubject {
        AuditSubject(
            actor: session.user.username, session: session.family.id, target: AuditEvent.tokenReference(cookie), reason: reason)
    }
}

/// The portal's browser sessions. Each is a `.broker` session (a refresh family without tokens)
/// plus a `portal_sessions` row keyed by the hash of a random cookie, so that every way the API
/// ends sessions (disabling the account, a password reset, "sign out everywhere", an admin's
/// revocation, replicas on one database) ends a browser's too: ``resume(cookie:)`` applies the
/// very rule of ``PresentedTokens``.
///
/// ```swift
/// let started = try await portal.start(for: user, methods: [.password], origin: origin)
/// // Set-Cookie: __Host-broker_session=\(started.cookie)
/// let session = try await portal.resume(cookie: started.cookie)   // nil once ended
/// ```
public struct PortalSessions: Sendable {
    public let store: any Store
    public let clock: any WallClock
    public let policy: PortalSessionPolicy
    public let flows: FlowAudit

    public init(store: any Store, clock: any WallClock, policy: PortalSessionPolicy, flows: FlowAudit) {
        self.store = store
        self.clock = clock
        self.policy = policy
        self.flows = flows
    }

    /// The server secret (`server_secrets`, or sealed beside a ring kept in the database) that the
    /// portal's CSRF tokens are keyed with: shared by replicas, so a form served by one is
    /// accepted by another.
    public static let secretName = "portal_key"

    /// The cookie of a session: 32 random bytes, base64url, 43 characters.
    static let cookieLength = 43

    /// What the store keeps of a cookie.
    public static func idHash(of cookie: String) -> String { Digest.sha256Hex(cookie) }

    /// Whether `text` has the shape of a cookie this class issues (checked before any store read).
    static func isWellFormed(_ cookie: String) -> Bool {
        cookie.utf8.count == cookieLength && cookie.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x5F
        }
    }

    /// Starts a session for an account a sign-in has just authenticated. `user` is the account
    /// as the sign-in read it before checking its credential: the session is recorded only if
    /// the account is still so (``PresentedTokens/record(_:in:)``).
    /// - Throws: 401 ``ErrorCode/credentialsChanged`` or ``ErrorCode/accountDisabled``.
    public func start(for user: User, methods: [AuthenticationMethod], origin: SessionOrigin?) async throws -> PortalSessionStart {
        let now = clock.now()
        // Drawn outside the transaction body, so that a re-run of the body inserts the same row.
        let cookie = Base64URL.encode(SecureRandom.bytes(32))
        let idHash = Self.idHash(of: cookie)
        let family = RefreshFamily(
            id: RefreshTokenRotation.newFamilyID(), userID: user.id, scope: .broker, authenticatedAt: now,
            expiresAt: now.addingTimeInterval(TimeInterval(policy.lifetime)), authenticationMethods: methods.map(\.rawValue),
            accountVersions: user.versions, origin: origin, client: .broker)
        try await store.transaction { tx in
            try await PresentedTokens.record(family, in: tx)
            try await tx.insertPortalSession(idHash: idHash, familyID: family.id, at: now)
        }
        return PortalSessionStart(cookie: cookie, session: PortalSession(user: user, family: family, idHash: idHash))
    }

    /// The live session a cookie names, or nil: unknown, signed out, revoked, past its lifetime,
    /// idle for longer than the idle timeout (which ends it here), or its account disabled or
    /// changed since (a password reset, "sign out everywhere").
    public func resume(cookie: String) async throws -> PortalSession? {
        guard Self.isWellFormed(cookie) else { return nil }
        let idHash = Self.idHash(of: cookie)
        let now = clock.now()
        guard let snapshot = try await store.read({ tx in try await tx.portalSession(idHash: idHash) }) else { return nil }
        if PresentedTokens.sessionRefusal(snapshot.family, now: now) != nil
            || PresentedTokens.accountRefusal(snapshot.user, of: snapshot.family) != nil
        {
            return nil
        }
        guard let user = snapshot.user else { return nil }
        let idle = now.timeIntervalSince(snapshot.lastSeenAt)
        if idle >= TimeInterval(policy.idleTimeout) {
            try await store.transaction { tx in
                try await tx.revokeRefreshFamily(id: snapshot.family.id, at: now, reason: "idle")
                _ = try await tx.deletePortalSession(idHash: idHash)
            }
            return nil
        }
        if idle >= TimeInterval(policy.touchInterval) {
            do {
                try await store.transaction { tx in try await tx.touchPortalSession(idHash: idHash, at: now) }
            } catch StoreError.notFound {
                return nil  // signed out by another request since the read
            }
        }
        return PortalSession(user: user, family: snapshot.family, idHash: idHash)
    }

    /// How recent a sign-in changing how the account signs in (linking or unlinking GitHub) needs.
    public static let recentSignIn: TimeInterval = 600

    /// - Throws: 401 `invalid_token` unless `session` signed in within ``recentSignIn``: a
    ///   browser left signed in must not add or remove a way into the account.
    public func requireRecentSignIn(_ session: PortalSession) throws {
        guard clock.now().timeIntervalSince(session.family.authenticatedAt) <= Self.recentSignIn else {
            throw BrokerError(
                .invalidToken, "sign out and in again first: changing how the account signs in needs a sign-in of the last 10 minutes")
        }
    }

    /// Signs the browser out: ends its session on the server (a copied cookie is worthless
    /// after), audited as `session.revoke` with `reason` (`logout` when its holder signs out).
    public func end(_ session: PortalSession, reason: String = "logout", context: AuditContext) async throws {
        let now = clock.now()
        try await flows.run(
            .sessionRevoke, context,
            attempt: AuditSubject(actor: session.user.username, session: session.family.id, reason: reason)
        ) {
            try await store.transaction { tx in
                try await tx.revokeRefreshFamily(id: session.family.id, at: now, reason: reason)
                _ = try await tx.deletePortalSession(idHash: session.idHash)
            }
        } success: { _ in
            AuditSubject(actor: session.user.username, session: session.family.id, reason: reason)
        }
    }
}
