import BrokerCore
import BrokerCrypto
import BrokerPostgres
import BrokerSQLite
import Foundation
import XCTest

/// `broker db copy` at the store layer (``DatabaseCopy``): it knows every table and column of
/// both engines' schemas, and a copy into PostgreSQL reads back, through the ordinary store
/// methods, exactly as the SQLite source did — ids, dates, booleans, lists, the key ring and the
/// server secrets. A target that is not empty is refused and left as it was.
final class StoreCopyTests: XCTestCase {
    /// Every table a schema may have: copied row for row, or carried another way.
    static var knownTables: Set<String> {
        Set(StoreCopySchema.tables.map(\.name)).union(StoreCopySchema.carriedOtherwise.keys)
    }

    /// Fails when a migration adds a table or a column that the copy does not know: its rows
    /// would be left behind by every move to PostgreSQL.
    func assertCopyKnowsEveryTable(_ catalogue: [String: Set<String>], engine: String) {
        XCTAssertEqual(
            Set(catalogue.keys), Self.knownTables,
            "\(engine): every table of the schema must be in StoreCopySchema.tables or .carriedOtherwise")
        for table in StoreCopySchema.tables {
            XCTAssertEqual(
                Set(table.columns.map(\.name)), catalogue[table.name], "\(engine): StoreCopySchema's columns of \(table.name)")
        }
    }

    func testTheCopyKnowsEveryTableAndColumnOfTheSQLiteSchema() async throws {
        let store = try await SQLiteStore.openInMemory(logger: StoreFixture.logger)
        let catalogue = try await store.catalogue()
        try await store.close()
        assertCopyKnowsEveryTable(catalogue, engine: "SQLite")
    }

    func testTheCopyKnowsEveryTableAndColumnOfThePostgreSQLSchema() async throws {
        let database = try await PostgresTestDatabase.create()
        let store = try await PostgresStore.open(database.settings(), logger: StoreFixture.logger)
        let catalogue = try await store.catalogue()
        try await store.close()
        try await database.drop()
        assertCopyKnowsEveryTable(catalogue, engine: "PostgreSQL")
    }

    /// Everything a single node holds, through the store's own methods.
    private func seed(_ store: any Store) async throws -> (alice: Int64, bob: Int64, physics: Int64, chemistry: Int64) {
        try await store.transaction { tx in
            let alice = try await tx.insertUser(StoreFixture.newUser("alice"))
            let bob = try await tx.insertUser(NewUser(username: "bob", passwordHash: nil, isActive: false, createdAt: StoreFixture.date(1_700_000_123.25)))
            // The highest id, deleted: no one may get it again (tokens name accounts by id).
            let gone = try await tx.insertUser(StoreFixture.newUser("gone"))
            _ = try await tx.deleteUser(id: gone.id)
            try await tx.setGlobalRole(userID: alice.id, to: .admin)
            try await tx.setGitHubLink(userID: bob.id, login: "Bob-GH", id: 4242)
            _ = try await tx.advanceSessionVersion(userID: alice.id)
            let physics = try await tx.insertOrganization(name: "physics", clusterName: "physics-cluster", createdAt: StoreFixture.t0)
            let chemistry = try await tx.insertOrganization(name: "chemistry", clusterName: "chem", createdAt: StoreFixture.t0)
            try await tx.setTokenPolicy(
                organizationID: physics.id, to: OrganizationTokenPolicy(accessLifetime: 600, audiences: ["physics-cluster", "archive"]))
            try await tx.insertAudienceName(AudienceName(name: "physics-cluster", holder: .organization(id: physics.id, use: .cluster)))
            try await tx.insertAudienceName(AudienceName(name: "archive", holder: .organization(id: physics.id, use: .policyAudience)))
            try await tx.insertAudienceName(AudienceName(name: "monitor", holder: .service))
            try await tx.insertAudienceName(AudienceName(name: "old-cluster", holder: .reserved(formerOrganization: "old")))
            try await tx.upsertMembership(
                Membership(organizationID: physics.id, userID: alice.id, role: .owner, isActive: true, createdAt: StoreFixture.t0))
            try await tx.upsertMembership(
                Membership(organizationID: chemistry.id, userID: bob.id, role: .member, isActive: false, createdAt: StoreFixture.t0))
            try await tx.insertMembershipRequest(organizationID: chemistry.id, userID: alice.id, at: StoreFixture.date(1_700_000_500.5))
            var family = StoreFixture.family("family-1", user: alice.id, org: physics.id)
            family.origin = SessionOrigin(clientIP: "2001:db8::7", userAgent: "sliderule-python/4.2 (Linux; é)")
            try await tx.insertRefreshFamily(family)
            try await tx.insertRefreshToken(
                RefreshTokenRecord(
                    tokenHash: "hash-1", familyID: "family-1", issuedAt: StoreFixture.t0,
                    expiresAt: StoreFixture.t0.addingTimeInterval(3600), usedAt: StoreFixture.date(1_700_000_060.125)))
            try await tx.insertRefreshToken(
                RefreshTokenRecord(
                    tokenHash: "hash-2", familyID: "family-1", issuedAt: StoreFixture.t0, expiresAt: StoreFixture.t0.addingTimeInterval(7200)))
            try await tx.insertRefreshFamily(StoreFixture.family("family-2", user: alice.id, org: chemistry.id))
            try await tx.revokeRefreshFamily(id: "family-2", at: StoreFixture.t0, reason: "logout")
            // A browser's portal session: its family, with an origin, and its row.
            try await tx.insertRefreshFamily(
                RefreshFamily(
                    id: "browser-1", userID: alice.id, scope: .broker, authenticatedAt: StoreFixture.t0,
                    expiresAt: StoreFixture.t0.addingTimeInterval(43_200), authenticationMethods: ["pwd"],
                    accountVersions: .initial, origin: SessionOrigin(clientIP: "192.0.2.9", userAgent: "Mozilla/5.0")))
            try await tx.insertPortalSession(
                idHash: Self.portalHash, familyID: "browser-1", at: StoreFixture.date(1_700_000_300.5))
            try await tx.insertRevokedAccessToken(jti: "revoked-jti", expiresAt: StoreFixture.t0.addingTimeInterval(900))
            try await tx.recordSignedLifetime(kid: "some-kid", lifetime: 900)
            _ = try await tx.insertServerSecretIfAbsent(named: RefreshTokenRotation.secretName, value: Array(repeating: 7, count: 32))
            return (alice.id, bob.id, physics.id, chemistry.id)
        }
    }

    static let portalHash = String(repeating: "d", count: 64)

    /// What the store methods read back, to compare source and target.
    private struct Contents: Equatable {
        var users: [User]
        var organizations: [Organization]
        var memberships: [[UserMembership]]
        var requests: [MembershipRequest]
        var audienceNames: [AudienceName]
        var families: [RefreshFamily?]
        var portalSession: PortalSessionSnapshot?
        var portalLastSeen: [String: Date]
        var tokens: [RefreshTokenRecord?]
        var revoked: Bool
        var lifetimes: [String: Int]
    }

    private func contents(_ store: any Store, _ ids: (alice: Int64, bob: Int64, physics: Int64, chemistry: Int64)) async throws -> Contents {
        try await store.read { tx in
            Contents(
                users: try await tx.users(), organizations: try await tx.organizations(),
                memberships: [try await tx.memberships(userID: ids.alice), try await tx.memberships(userID: ids.bob)],
                requests: try await tx.membershipRequests(organizationID: ids.chemistry),
                audienceNames: try await tx.audienceNames(),
                families: [
                    try await tx.refreshFamily(id: "family-1"), try await tx.refreshFamily(id: "family-2"),
                    try await tx.refreshFamily(id: "browser-1"),
                ],
                portalSession: try await tx.portalSession(idHash: Self.portalHash),
                portalLastSeen: try await tx.portalSessionLastSeen(userID: ids.alice),
                tokens: [try await tx.refreshToken(hash: "hash-1"), try await tx.refreshToken(hash: "hash-2")],
                revoked: try await tx.isAccessTokenRevoked(jti: "revoked-jti"),
                lifetimes: try await tx.longestSignedLifetimes(kids: ["some-kid"]))
        }
    }

    /// The seed's portal session and origins are there (equal contents could be equally empty).
    private static func assertPortalStateCarried(_ copied: Contents, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(
            copied.families.first??.origin,
            SessionOrigin(clientIP: "2001:db8::7", userAgent: "sliderule-python/4.2 (Linux; é)"), file: file, line: line)
        XCTAssertEqual(copied.portalSession?.family.id, "browser-1", file: file, line: line)
        XCTAssertEqual(copied.portalSession?.family.origin?.clientIP, "192.0.2.9", file: file, line: line)
        XCTAssertEqual(copied.portalSession?.user?.username, "alice", file: file, line: line)
        XCTAssertEqual(copied.portalLastSeen, ["browser-1": StoreFixture.date(1_700_000_300.5)], file: file, line: line)
    }

    func testACopyIntoPostgreSQLReadsBackAsTheSQLiteSourceAndKeepsTheRingAndSecrets() async throws {
        let database = try await PostgresTestDatabase.create()
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("store-copy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let source = try await SQLiteStore.open(path: scratch.appendingPathComponent("broker.sqlite3").path, logger: StoreFixture.logger)
        let target = try await PostgresStore.open(database.settings(), logger: StoreFixture.logger)
        let keys = KeyDirectory(path: scratch.appendingPathComponent("keys").path)
        let ring = try keys.loadOrInitialize(algorithm: .rs256)
        let kek = KeyEncryptionKey(key: SealingKey.random(), file: "/etc/broker/kek")

        let ids = try await seed(source)
        let report = try await DatabaseCopy(source: source, sourceKeyRing: .directory(keys), target: target, kek: kek).run()
        XCTAssertTrue(report.isVerified, "\(report.counts)")
        XCTAssertEqual(report.counts.first { $0.what == "users" }?.target, 2)
        XCTAssertEqual(report.counts.first { $0.what == "signing keys" }?.target, ring.keys.count)
        XCTAssertEqual(report.counts.first { $0.what == "server secrets" }?.target, 1)

        let expected = try await contents(source, ids)
        let copied = try await contents(target, ids)
        XCTAssertEqual(copied, expected)
        Self.assertPortalStateCarried(copied)

        // The ring, sealed under the KEK, opens as the replicas will open it.
        let storage = DatabaseKeyRing(store: target, kek: kek)
        let loaded = try await storage.loadRing()
        XCTAssertEqual(loaded?.keys.map(\.metadata), ring.keys.map(\.metadata))
        XCTAssertEqual(loaded?.jwksJSON, ring.jwksJSON)
        let secret = try await storage.serverSecret(named: RefreshTokenRotation.secretName, store: target)
        XCTAssertEqual(secret, Array(repeating: 7, count: 32), "the refresh-successor HMAC key moved, not made anew")
        let stored = try await target.read { tx in try await tx.storedKeyRing() }
        let document = String(decoding: try XCTUnwrap(stored).document, as: UTF8.self)
        XCTAssertFalse(document.contains("PRIVATE KEY"), "no private key in clear in the database")

        // The identity continues past the copied ids.
        let carol = try await target.transaction { tx in try await tx.insertUser(StoreFixture.newUser("carol")) }
        XCTAssertGreaterThan(carol.id, max(ids.alice, ids.bob) + 1, "past the copied ids and the deleted account's")

        // A second copy finds the target in use: refused, nothing written.
        do {
            _ = try await DatabaseCopy(source: source, sourceKeyRing: .directory(keys), target: target, kek: kek).run()
            XCTFail("a copy into a database holding data must be refused")
        } catch let refusal as StoreCopyRefusal {
            XCTAssertTrue(refusal.description.contains("not empty"), refusal.description)
        }
        let users = try await target.read { tx in try await tx.users().count }
        XCTAssertEqual(users, 3)

        try await source.close()
        try await target.close()
        try await database.drop()
        try? FileManager.default.removeItem(at: scratch)
    }

    func testAPostgreSQLSourceIsReSealedUnderTheTargetKEK() async throws {
        let first = try await PostgresTestDatabase.create()
        let second = try await PostgresTestDatabase.create()
        let source = try await PostgresStore.open(first.settings(), logger: StoreFixture.logger)
        let target = try await PostgresStore.open(second.settings(), logger: StoreFixture.logger)
        let oldKEK = KeyEncryptionKey(key: SealingKey.random(), file: "/etc/broker/old-kek")
        let newKEK = KeyEncryptionKey(key: SealingKey.random(), file: "/etc/broker/new-kek")
        let sourceRing = DatabaseKeyRing(store: source, kek: oldKEK)
        let ring = try await sourceRing.loadOrInitializeRing(algorithm: .es256)
        let secret = try await sourceRing.serverSecret(named: RefreshTokenRotation.secretName, store: source)
        let ids = try await seed(source)

        let report = try await DatabaseCopy(source: source, sourceKeyRing: .database(oldKEK), target: target, kek: newKEK).run()
        XCTAssertTrue(report.isVerified, "\(report.counts)")
        let copiedSource = try await contents(source, ids)
        let copiedTarget = try await contents(target, ids)
        XCTAssertEqual(copiedTarget, copiedSource)
        Self.assertPortalStateCarried(copiedTarget)
        let moved = DatabaseKeyRing(store: target, kek: newKEK)
        let loadedKids = try await moved.loadRing()?.keys.map(\.metadata.kid)
        XCTAssertEqual(loadedKids, ring.keys.map(\.metadata.kid))
        // Both the sealed secret and the one in server_secrets (the seed's) are carried; the ring's wins.
        let movedSecret = try await moved.serverSecret(named: RefreshTokenRotation.secretName, store: target)
        XCTAssertEqual(movedSecret, secret)
        do {
            _ = try await DatabaseKeyRing(store: target, kek: oldKEK).loadRing()
            XCTFail("the target's ring is sealed under the new KEK only")
        } catch is KeyRingError {}

        try await source.close()
        try await target.close()
        try await first.drop()
        try await second.drop()
    }

    func testASQLiteSourceWithDataButNoKeyRingIsRefused() async throws {
        let database = try await PostgresTestDatabase.create()
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("store-copy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let source = try await SQLiteStore.open(path: scratch.appendingPathComponent("broker.sqlite3").path, logger: StoreFixture.logger)
        let target = try await PostgresStore.open(database.settings(), logger: StoreFixture.logger)
        _ = try await seed(source)
        do {
            _ = try await DatabaseCopy(
                source: source, sourceKeyRing: .directory(KeyDirectory(path: scratch.appendingPathComponent("wrong-keys").path)),
                target: target, kek: KeyEncryptionKey(key: SealingKey.random(), file: "/etc/broker/kek")
            ).run()
            XCTFail("a copy that would lose every signing key must be refused")
        } catch let refusal as StoreCopyRefusal {
            XCTAssertTrue(refusal.description.contains("no key ring"), refusal.description)
        }
        let counts = try await target.rowCounts(of: StoreCopySchema.tables.map(\.name))
        XCTAssertEqual(counts.values.reduce(0, +), 0, "nothing written")
        try await source.close()
        try await target.close()
        try await database.drop()
        try? FileManager.default.removeItem(at: scratch)
    }

    /// A source still written to after its snapshot (a server left running): the copy commits
    /// what the snapshot held, and the verification says the two differ.
    func testTheVerificationReportsASourceThatChangedAfterItsSnapshot() async throws {
        let database = try await PostgresTestDatabase.create()
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("store-copy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let sqlite = try await SQLiteStore.open(path: scratch.appendingPathComponent("broker.sqlite3").path, logger: StoreFixture.logger)
        let target = try await PostgresStore.open(database.settings(), logger: StoreFixture.logger)
        let keys = KeyDirectory(path: scratch.appendingPathComponent("keys").path)
        _ = try keys.loadOrInitialize(algorithm: .es256)
        _ = try await seed(sqlite)

        let report = try await DatabaseCopy(
            source: StillServed(sqlite), sourceKeyRing: .directory(keys), target: target,
            kek: KeyEncryptionKey(key: SealingKey.random(), file: "/etc/broker/kek")
        ).run()
        XCTAssertFalse(report.isVerified)
        XCTAssertEqual(report.counts.filter { !$0.matches }.map(\.what), ["users"])
        XCTAssertEqual(report.counts.first { $0.what == "users" }.map { [$0.source, $0.target] }, [3, 2])

        try await sqlite.close()
        try await target.close()
        try await database.drop()
        try? FileManager.default.removeItem(at: scratch)
    }
}

/// A SQLite source that gains an account right after its snapshot was read.
private struct StillServed: CopySource {
    let store: SQLiteStore
    init(_ store: SQLiteStore) { self.store = store }

    var isSharedByReplicas: Bool { store.isSharedByReplicas }

    func copySnapshot(of tables: [CopiedTable]) async throws -> StoreCopySnapshot {
        let snapshot = try await store.copySnapshot(of: tables)
        _ = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("late")) }
        return snapshot
    }

    func catalogue() async throws -> [String: Set<String>] { try await store.catalogue() }
    func rowCounts(of tables: [String]) async throws -> [String: Int] { try await store.rowCounts(of: tables) }
    func transaction<T: Sendable>(_ body: @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        try await store.transaction(body)
    }
    func close() async throws { try await store.close() }
}
