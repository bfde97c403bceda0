import Foundation

/// Persistent state of the broker: users, organizations, memberships, refresh families and
/// server secrets. Every access happens inside a transaction so that a rule spanning several
/// reads and writes (refresh rotation, reuse detection) sees one consistent state and either
/// commits whole or leaves nothing behind.
///
/// ```swift
/// let user = try await store.transaction { tx in try await tx.user(named: "alice") }
/// ```
public protocol Store: Sendable {
    /// Runs `body` in one serializable transaction. If `body` throws, the transaction rolls back
    /// and the error is rethrown. The outcome is always that of the transactions one after the
    /// other: SQLite runs them one at a time; PostgreSQL runs them at once at SERIALIZABLE and
    /// runs `body` again when the database aborts it for a conflict, so `body` must have no effect
    /// outside the store (it may run more than once; only its last run commits).
    func transaction<T: Sendable>(
        _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T

    /// Runs `body` on a consistent, read-only snapshot, without waiting for writers where the
    /// engine allows it (hot read paths: logins). A write inside throws.
    func read<T: Sendable>(
        _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T

    /// Runs `body` in one read-write transaction that serializes itself with locks
    /// (``StoreTransaction/lockThrottleKeys(_:)``, ``StoreTransaction/renewal(ofTokenHash:counting:)``)
    /// instead of being aborted and run again when it conflicts: on PostgreSQL at
    /// `READ COMMITTED`, each statement seeing what committed before it, so a body that waited for
    /// a lock reads what the lock's holder wrote. For hot paths that many requests take at once
    /// (``StoreThrottleCounters``, refresh-token renewals), whose every read that a rule depends on
    /// is under such a lock; at `SERIALIZABLE` PostgreSQL's predicate locks, which cover index
    /// pages, took renewals of unrelated sessions for conflicts and ran them again. SQLite runs
    /// every write transaction alone anyway.
    func lockingTransaction<T: Sendable>(
        _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T

    /// What a returning GitHub user's login needs, read consistently and as cheaply as the
    /// engine allows (SQLite: one statement): the account linked to the GitHub user id, or else
    /// the one linked to the login (whose recorded id may be unknown or another one: the caller
    /// decides), its memberships, and the named organizations that exist.
    func accountSnapshot(githubID: Int64, login: String, organizations names: [String]) async throws -> AccountSnapshot

    /// Whether broker processes on other hosts (replicas) may use this store at the same time:
    /// PostgreSQL yes, SQLite (one node) no. State that must hold across replicas, such as the
    /// throttle counters (``ThrottleCounting``), lives in the store when it is shared.
    var isSharedByReplicas: Bool { get }

    /// Closes the underlying connections. The store cannot be used afterwards.
    func close() async throws
}

/// See ``Store/accountSnapshot(githubID:login:organizations:)``.
public struct AccountSnapshot: Sendable, Equatable {
    public var user: User?
    /// The account's memberships (active or not), ordered by organization name.
    public var memberships: [UserMembership]
    /// The requested organizations that exist, ordered by name.
    public var organizations: [Organization]

    public init(user: User?, memberships: [UserMembership], organizations: [Organization]) {
        self.user = user
        self.memberships = memberships
        self.organizations = organizations
    }
}

extension Store {
    public func accountSnapshot(githubID: Int64, login: String, organizations names: [String]) async throws -> AccountSnapshot {
        try await read { tx in
            var user = try await tx.user(githubID: githubID)
            if user == nil { user = try await tx.user(githubLogin: login) }
            var memberships: [UserMembership] = []
            if let user { memberships = try await tx.memberships(userID: user.id) }
            return AccountSnapshot(
                user: user, memberships: memberships, organizations: try await tx.organizations(named: names))
        }
    }

    /// Engines that run write transactions one at a time need no other kind.
    public func lockingTransaction<T: Sendable>(
        _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T {
        try await transaction(body)
    }

    /// Engines without a separate read path read inside an ordinary transaction.
    public func read<T: Sendable>(
        _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T {
        try await transaction(body)
    }
}

/// The operations available inside a transaction. Methods return `nil`/`false` for absent rows
/// and throw ``StoreError`` for constraint violations and engine failures.
public protocol StoreTransaction: Sendable {
    // MARK: Users
    /// Throws ``StoreError/duplicate(_:)`` if a username reads the same: its key or its
    /// confusable skeleton (``AccountName``) is another account's.
    func insertUser(_ user: NewUser) async throws -> User
    /// The account whose name has the key of `username` (``AccountName/key(of:)``): `JOSÉ` finds
    /// `josé`. Where rows from before the name profile share a key, the exact spelling wins,
    /// then the oldest account.
    func user(named username: String) async throws -> User?
    /// The account whose name looks like `name` (the same TS #39 skeleton), if any.
    func user(confusableWith name: String) async throws -> User?
    func user(id: Int64) async throws -> User?
    /// The user linked to a GitHub login, compared case-insensitively.
    func user(githubLogin login: String) async throws -> User?
    /// The user linked to a GitHub user id.
    func user(githubID: Int64) async throws -> User?
    /// Sets the account's GitHub link: the login and, once known, GitHub's user id (both `nil`:
    /// unlinked). Throws ``StoreError/duplicate(_:)`` if another user has the login or the id.
    func setGitHubLink(userID: Int64, login: String?, id: Int64?) async throws
    /// All users ordered by id.
    func users() async throws -> [User]
    /// At most `limit` users with an id greater than `afterID`, ordered by id (keyset paging).
    func users(afterID: Int64, limit: Int) async throws -> [User]
    func setGlobalRole(userID: Int64, to role: GlobalRole?) async throws
    /// Deletes the user with their memberships, requests and refresh families. Returns whether
    /// the user existed.
    func deleteUser(id: Int64) async throws -> Bool
    /// Replaces the hash alone (an upgrade of the same password); a new password also calls
    /// ``advanceCredentialVersion(userID:)``.
    func updatePasswordHash(userID: Int64, to hash: String?) async throws
    func setUserActive(userID: Int64, _ active: Bool) async throws
    /// Advances the account's credential version (see ``CredentialVersion``); returns the new
    /// versions. Throws ``StoreError/notFound(_:)`` for an unknown user.
    func advanceCredentialVersion(userID: Int64) async throws -> AccountVersions
    /// Advances the account's session version (see ``SessionVersion``): every session started
    /// before has ended. Returns the new versions; throws ``StoreError/notFound(_:)``.
    func advanceSessionVersion(userID: Int64) async throws -> AccountVersions

    // MARK: Organizations
    /// Throws ``StoreError/duplicate(_:)`` if the name or the cluster name is taken.
    func insertOrganization(name: String, clusterName: String, createdAt: Date) async throws -> Organization
    /// Compared like ``user(named:)``: `ORG1` finds `org1`.
    func organization(named name: String) async throws -> Organization?
    /// The organization whose name looks like `name` (the same TS #39 skeleton), if any.
    func organization(confusableWith name: String) async throws -> Organization?
    /// Users and organizations whose names read like an older one's: rows from before the
    /// name profile, kept working and reported (`broker users collisions`, and at start-up).
    func nameCollisions() async throws -> [NameCollision]
    func organization(id: Int64) async throws -> Organization?
    /// All organizations ordered by name.
    func organizations() async throws -> [Organization]
    func setTokenPolicy(organizationID: Int64, to policy: OrganizationTokenPolicy) async throws
    /// Deletes the organization with its memberships, requests and refresh families. Returns
    /// whether it existed.
    func deleteOrganization(id: Int64) async throws -> Bool
    /// Whether some organization has this cluster name (or lists it among its audiences).
    func organizationUsingAudience(_ name: String) async throws -> Organization?

    // MARK: Audience names (see ``AudienceName``)
    /// Records the holder of a name. Throws ``StoreError/duplicate(_:)`` if the name has one
    /// (whoever it is: the constraint, not a prior read, decides between racing claims).
    func insertAudienceName(_ name: AudienceName) async throws
    func audienceName(_ name: String) async throws -> AudienceName?
    /// Every held name, ordered by name.
    func audienceNames() async throws -> [AudienceName]
    /// Changes why the organization holds a name it already holds.
    func updateAudienceNameUse(_ name: String, organizationID: Int64, to use: AudienceName.Use) async throws
    /// Forgets the organization's names held for `use`, except those in `keeping`.
    func deleteAudienceNames(organizationID: Int64, use: AudienceName.Use, keeping: [String]) async throws
    /// Turns every name of the organization into a reservation under its name (before the
    /// organization is deleted: the store refuses to delete an organization that holds names).
    func reserveAudienceNames(organizationID: Int64, formerOrganization: String) async throws
    /// Deletes the name if it is a reservation; returns the reservation it was.
    func deleteReservedAudienceName(_ name: String) async throws -> AudienceName?
    /// Deletes the service audience unless an organization's token policy lists it (checked by
    /// the deleting statement itself); returns whether it did.
    func deleteServiceAudience(_ name: String) async throws -> Bool

    // MARK: Memberships
    /// Inserts or replaces the membership of (organizationID, userID).
    func upsertMembership(_ membership: Membership) async throws
    func membership(organizationID: Int64, userID: Int64) async throws -> Membership?
    /// Members of one organization ordered by username.
    func members(organizationID: Int64) async throws -> [MemberListing]
    /// The organizations with these names (those that exist), ordered by name.
    func organizations(named names: [String]) async throws -> [Organization]
    /// Every membership of one user with its organization, ordered by organization name.
    func memberships(userID: Int64) async throws -> [UserMembership]
    /// Returns whether a row was deleted.
    func deleteMembership(organizationID: Int64, userID: Int64) async throws -> Bool

    // MARK: Membership requests
    /// Throws ``StoreError/duplicate(_:)`` if this user already asked to join this organization.
    func insertMembershipRequest(organizationID: Int64, userID: Int64, at date: Date) async throws
    /// Pending requests of one organization, oldest first.
    func membershipRequests(organizationID: Int64) async throws -> [MembershipRequest]
    func membershipRequest(organizationID: Int64, userID: Int64) async throws -> MembershipRequest?
    /// The account's own pending membership requests, with the organization's name, oldest first.
    func membershipRequests(userID: Int64) async throws -> [OwnMembershipRequest]
    /// Returns whether a request was deleted.
    func deleteMembershipRequest(organizationID: Int64, userID: Int64) async throws -> Bool

    // MARK: Refresh families
    func insertRefreshFamily(_ family: RefreshFamily) async throws
    func refreshFamily(id: String) async throws -> RefreshFamily?
    /// Marks the family revoked (keeps the first revocation's time and reason if already revoked).
    func revokeRefreshFamily(id: String, at date: Date, reason: String) async throws
    /// Throws ``StoreError/duplicate(_:)`` if the hash exists.
    func insertRefreshToken(_ token: RefreshTokenRecord) async throws
    func refreshToken(hash: String) async throws -> RefreshTokenRecord?
    /// What renewing the refresh token `tokenHash` reads (`nil` for an unknown token or one
    /// without its family), as cheaply as the engine allows (PostgreSQL: one statement). The
    /// token stays locked until the transaction ends, so a concurrent renewal of the same token
    /// (inside ``Store/lockingTransaction(_:)``) waits, then reads it used.
    /// - Parameter window: the session's renewals to count, read with the rest
    ///   (``RenewalSnapshot/limitingRenewal``); each renewal uses one refresh token.
    func renewal(ofTokenHash tokenHash: String, counting window: RenewalWindow?) async throws -> RenewalSnapshot?
    func markRefreshTokenUsed(hash: String, at date: Date) async throws
    /// The write of a renewal: ``markRefreshTokenUsed(hash:at:)`` of the presented token, then
    /// ``insertRefreshToken(_:)`` of its successor, in one statement where statements cross a
    /// network. Throws as they do.
    func markRefreshTokenUsed(hash: String, at date: Date, insertingSuccessor successor: RefreshTokenRecord) async throws
    /// A user's refresh families (sessions), newest login first.
    func refreshFamilies(userID: Int64) async throws -> [RefreshFamily]
    /// Revokes every family of the user that is neither revoked nor expired at `date`; returns
    /// how many were revoked (sessions that were live, not rows that had already ended).
    func revokeRefreshFamilies(userID: Int64, at date: Date, reason: String) async throws -> Int

    // MARK: Portal sessions
    // A browser's session is a `.broker` family with a `portal_sessions` row: every way a family
    // ends (revocation, the account's versions, expiry, pruning) ends the browser's session too,
    // and the row goes with its family (ON DELETE CASCADE).

    /// A browser's portal session: the `.broker` family it belongs to, keyed by the hash of its cookie.
    /// Throws ``StoreError/duplicate(_:)`` if the hash or the family has one already (never
    /// overwrites), ``StoreError/notFound(_:)`` for an unknown family.
    func insertPortalSession(idHash: String, familyID: String, at date: Date) async throws
    /// The session, its family and its account in one read; nil if unknown.
    func portalSession(idHash: String) async throws -> PortalSessionSnapshot?
    /// Records that the browser was seen at `date` (an earlier date than the one recorded changes
    /// nothing: two requests finishing out of order do not move it back). Throws
    /// ``StoreError/notFound(_:)`` for an unknown hash.
    func touchPortalSession(idHash: String, at date: Date) async throws
    /// Returns whether a row was deleted; the family stays (the caller revokes it).
    func deletePortalSession(idHash: String) async throws -> Bool
    /// The portal sessions of one account, by family id (which of its `.broker` families are browsers).
    func portalSessionLastSeen(userID: Int64) async throws -> [String: Date]

    // MARK: Invitations
    // An invitation is known by the SHA-256 of its code (``InvitationCode/hash(of:)``); the code
    // itself is never stored. Used once: ``redeemInvitation(id:by:at:)`` decides, in one UPDATE.

    /// Throws ``StoreError/duplicate(_:)`` if the id or the code's hash is taken (never
    /// overwrites), ``StoreError/notFound(_:)`` for an unknown organization or account.
    func insertInvitation(_ invitation: Invitation) async throws
    /// The invitation with this code hash, used or expired ones included; nil if unknown.
    func invitation(codeHash: String) async throws -> Invitation?
    /// The invitation with this id, used or expired ones included; nil if unknown.
    func invitation(id: String) async throws -> Invitation?
    /// An organization's invitations, or with nil the account-only ones; newest first, used and
    /// expired ones included.
    func invitations(organizationID: Int64?) async throws -> [Invitation]
    /// Marks the invitation used by `userID` at `date` if it is still unused and expires after
    /// `date`, in one statement: of two sign-ups racing with one code, exactly one gets true.
    /// Throws ``StoreError/notFound(_:)`` for an unknown account.
    func redeemInvitation(id: String, by userID: Int64, at date: Date) async throws -> Bool
    /// Returns whether a row was deleted.
    func deleteInvitation(id: String) async throws -> Bool

    // MARK: Revoked access tokens
    /// Remembers a revoked access token (by `jti`) until it expires.
    func insertRevokedAccessToken(jti: String, expiresAt: Date) async throws
    func isAccessTokenRevoked(jti: String) async throws -> Bool
    /// Forgets revoked tokens that have expired anyway.
    func pruneRevokedAccessTokens(before date: Date) async throws

    // MARK: Throttle counters shared by replicas (see ``StoreThrottleCounters``)
    /// Waits until no other transaction holds any of these keys, then holds them until this one
    /// ends (see ``Store/lockingTransaction(_:)``). A no-op where write transactions run alone.
    func lockThrottleKeys(_ keys: [ThrottleCounterKey]) async throws
    /// What each key counts within the window, as ``ThrottleTable`` counts it: its own times after
    /// `cutoff`, oldest first, or, for a key without times of its own in the window, the times
    /// of its counter's overflow key (``ThrottleCounterKey/overflow(of:)``). A key counting
    /// nothing is absent.
    func throttleTimes(_ keys: [ThrottleCounterKey], after cutoff: Date) async throws -> [ThrottleCounterKey: [ThrottleTime]]
    /// Counts `now` for each key, after deleting its times at or before `cutoff`. A key without
    /// times of its own first deletes every such time of its counter (so the table holds the
    /// window, no more), then starts with its counter's overflow times that are not held (as
    /// failures), or, when `maximumKeys` keys of its counter already hold times, counts in the
    /// overflow key instead (`nil`: no bound, no overflow). `heldUntil`: an attempt in flight
    /// holds the new times (``ThrottleTime/heldUntil``).
    /// - Returns: the new times' ids, one per key, for ``deleteThrottleTimes(ids:)``.
    @discardableResult
    func recordThrottleTime(
        _ keys: [ThrottleCounterKey], at now: Date, cutoff: Date, maximumKeys: Int?, heldUntil: Date?
    ) async throws -> [Int64]
    /// Deletes the times of these ids (an attempt in flight settled); ids already gone are skipped.
    func deleteThrottleTimes(ids: [Int64]) async throws
    /// Forgets every time of `key` (a right password starts a pair afresh).
    func forgetThrottleKey(_ key: ThrottleCounterKey) async throws
    /// Deletes at most `limit` times, in all, at or before `date` of these counters (see
    /// ``StoragePruner``); returns how many.
    func pruneThrottleTimes(counters: [ThrottleCounter], before date: Date, limit: Int) async throws -> Int

    // MARK: Pruning (see ``StoragePruner``)
    /// Deletes at most `limit` rows, in all, of what `cutoffs` says can no longer matter:
    /// refresh tokens of sessions that expired or were revoked, unused refresh tokens that
    /// expired, then sessions that expired and hold no refresh token any more (so that no
    /// cascade exceeds the limit), then revocations of access tokens that expired. A pruned
    /// session takes its portal row (``portalSession(idHash:)``, one at most) with it by
    /// cascade, uncounted: a batch may delete as many more rows as the sessions it deletes.
    /// Last, invitations that expired before the sessions' cutoff, used or not (within the same limit).
    func pruneStorage(_ cutoffs: PruneCutoffs, limit: Int) async throws -> PrunedRows

    // MARK: Server secrets
    /// A named random secret shared by every broker process using this store.
    func serverSecret(named name: String) async throws -> [UInt8]?
    /// Inserts the secret unless one of that name exists; returns the stored value either way.
    func insertServerSecretIfAbsent(named name: String, value: [UInt8]) async throws -> [UInt8]

    // MARK: Signed lifetimes (see ``SignedLifetimeLog``)
    /// Records that the signing key `kid` signs a token living `lifetime` seconds; the store
    /// keeps the longest per key.
    func recordSignedLifetime(kid: String, lifetime: Int) async throws
    /// The longest lifetime recorded for each of `kids` that signed anything; a key that signed
    /// nothing is absent.
    func longestSignedLifetimes(kids: [String]) async throws -> [String: Int]

    // MARK: The key ring in the database (see ``DatabaseKeyRing``)
    /// The stored key ring (one row at most), `nil` when there is none yet.
    func storedKeyRing() async throws -> StoredKeyRing?
    /// Compare-and-swap: stores `ring` if the stored version is `expectedVersion`, or, when
    /// `expectedVersion` is `nil`, if there is no ring yet. Returns false, changing nothing, when
    /// another writer got there first (the caller reloads and decides again).
    func replaceStoredKeyRing(_ ring: StoredKeyRing, expectedVersion: Int?) async throws -> Bool
}

extension StoreTransaction {
    /// ``renewal(ofTokenHash:counting:)`` without counting the session's renewals.
    public func renewal(ofTokenHash tokenHash: String) async throws -> RenewalSnapshot? {
        try await self.renewal(ofTokenHash: tokenHash, counting: nil)
    }

    /// Two statements: an engine without round trips has no reason to join them.
    public func markRefreshTokenUsed(
        hash: String, at date: Date, insertingSuccessor successor: RefreshTokenRecord
    ) async throws {
        try await self.markRefreshTokenUsed(hash: hash, at: date)
        try await self.insertRefreshToken(successor)
    }
}

/// The key ring as the store keeps it: a version, raised by every change, and an opaque document
/// (JSON with public metadata; every private key and secret sealed, see ``DatabaseKeyRing``).
public struct StoredKeyRing: Sendable, Equatable {
    public var version: Int
    public var document: [UInt8]

    public init(version: Int, document: [UInt8]) {
        self.version = version
        self.document = document
    }
}

/// A name that reads like an older one's (see ``StoreTransaction/nameCollisions()``).
public struct NameCollision: Sendable, Equatable {
    public enum Kind: String, Sendable { case user, organization }
    public var kind: Kind
    public var name: String
    /// The older user's or organization's name; `nil` when it was deleted since.
    public var readsLike: String?

    public init(kind: Kind, name: String, readsLike: String?) {
        self.kind = kind
        self.name = name
        self.readsLike = readsLike
    }
}

/// Failures a store reports in engine-independent terms.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A uniqueness constraint was violated; the associated value names what was duplicated.
    case duplicate(String)
    /// A referenced row does not exist.
    case notFound(String)
    /// The engine failed (I/O, corruption, busy past the timeout). Never contains secrets.
    case engine(String)
    /// The engine cannot be reached now (database down, connection refused, pool exhausted past
    /// its timeout): nothing was written, and the same request may succeed later. Answered 503
    /// with `Retry-After`. Never contains secrets.
    case unavailable(String)

    public var description: String {
        switch self {
        case .duplicate(let what): "already exists: \(what)"
        case .notFound(let what): "not found: \(what)"
        case .engine(let message): "storage error: \(message)"
        case .unavailable(let message): "storage unavailable: \(message)"
        }
    }
}
