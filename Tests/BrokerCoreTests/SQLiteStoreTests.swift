import BrokerCore
import Foundation
import Logging
import XCTest

@testable import BrokerSQLite

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Tests of ``SQLiteStore`` against real database files, one temporary directory per test.
final class SQLiteStoreTests: XCTestCase {
    private var directory: URL!
    private var openStores: [SQLiteStore] = []

    override func setUp() async throws {
        try await super.setUp()
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sqlite-store-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
    }

    override func tearDown() async throws {
        for store in self.openStores {
            try await store.close()
        }
        self.openStores = []
        try FileManager.default.removeItem(at: self.directory)
        try await super.tearDown()
    }

    private var databasePath: String {
        self.directory.appendingPathComponent("broker.sqlite3").path
    }

    private func openStore(path: String? = nil) async throws -> SQLiteStore {
        let store = try await SQLiteStore.open(path: path ?? self.databasePath, logger: StoreFixture.logger)
        self.openStores.append(store)
        return store
    }


    // The engine-independent tests are in StoreConformanceTests (run on SQLite and PostgreSQL).

    // MARK: Transactions (one connection, one writer)

    /// Each transaction reads the number of users and inserts the user named after it. If two
    /// transactions interleaved, both would read the same count and the second insert would be a
    /// duplicate; a checker also asserts that no two bodies ever run at once.
    func testConcurrentTransactionsNeverInterleave() async throws {
        let store = try await self.openStore()
        let overlap = OverlapDetector()
        let count = 50
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<count {
                group.addTask {
                    try await store.transaction { tx in
                        overlap.enter()
                        defer { overlap.leave() }
                        let seen = try await tx.users().count
                        await Task.yield()
                        _ = try await tx.insertUser(StoreFixture.newUser("user-\(seen)"))
                    }
                }
            }
            try await group.waitForAll()
        }
        XCTAssertEqual(overlap.maximum, 1)
        let names = try await store.transaction { tx in try await tx.users().map(\.username) }
        XCTAssertEqual(Set(names), Set((0..<count).map { "user-\($0)" }))
    }

    func testATaskCancelledWhileWaitingForTheStoreDoesNotRun() async throws {
        let store = try await self.openStore()
        let holding = Signal()
        let release = Signal()
        let holder = Task {
            try await store.transaction { tx in
                _ = try await tx.insertUser(StoreFixture.newUser("holder"))
                holding.fire()
                await release.wait()
            }
        }
        await holding.wait()
        let waiter = Task {
            try await store.transaction { tx in _ = try await tx.insertUser(StoreFixture.newUser("waiter")) }
        }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        // The waiter must give up at once, while the holder still holds the store.
        let outcome = await waiter.result(within: .seconds(10))
        release.fire()
        try await holder.value
        guard let outcome else {
            return XCTFail("the cancelled waiter went on waiting")
        }
        XCTAssertThrowsError(try outcome.get()) { error in
            XCTAssertTrue(error is CancellationError, "\(error)")
        }
        let names = try await store.transaction { tx in try await tx.users().map(\.username) }
        XCTAssertEqual(names, ["holder"])
    }

    func testTheStoreRecoversAfterItsConnectionWasDiscarded() async throws {
        let store = try await self.openStore()
        _ = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("alice")) }
        try await store.discardConnectionForTesting()
        let names = try await store.transaction { tx in try await tx.users().map(\.username) }
        XCTAssertEqual(names, ["alice"])
    }

    // MARK: Files and migrations

    func testDataPersistsAcrossReopeningAndMigrationsAreNotReapplied() async throws {
        let path = self.databasePath
        let first = try await SQLiteStore.open(path: path, logger: StoreFixture.logger)
        let precise = StoreFixture.date(1_700_000_000.123)
        let secret: [UInt8] = (0..<32).map { UInt8($0) }
        _ = try await first.transaction { tx in
            _ = try await tx.insertUser(NewUser(username: "alice", passwordHash: "h", createdAt: precise))
            return try await tx.insertServerSecretIfAbsent(named: "k", value: secret)
        }
        let versionsBefore = try await first.appliedMigrationVersions()
        try await first.close()

        let second = try await self.openStore(path: path)
        let versionsAfter = try await second.appliedMigrationVersions()
        XCTAssertEqual(versionsBefore, Array(1...SQLiteStore.latestSchemaVersion))
        XCTAssertEqual(versionsAfter, versionsBefore)
        try await second.transaction { tx in
            let alice = try await tx.user(named: "alice")
            XCTAssertEqual(alice?.passwordHash, "h")
            XCTAssertEqual(alice!.createdAt.timeIntervalSince1970, precise.timeIntervalSince1970, accuracy: 0.000_001)
            let stored = try await tx.serverSecret(named: "k")
            XCTAssertEqual(stored, secret)
        }
    }

    func testSessionsMigrationKeepsFamiliesAndTokensAndTheirCascade() async throws {
        let path = self.databasePath
        // A database as brokers before sessions of every kind left it: one family, one token.
        let old = try await SQLiteStore.open(path: path, logger: StoreFixture.logger, migrations: Array(Schema.migrations.prefix(3)))
        try await old.withExclusiveConnection { connection in
            for statement in [
                "INSERT INTO users (id, username, password_hash, is_active, created_at) VALUES (7, 'alice', NULL, 1, 0)",
                "INSERT INTO organizations (id, name, cluster_name, created_at) VALUES (3, 'physics', 'physics', 0)",
                """
                INSERT INTO refresh_families (id, user_id, organization_id, authenticated_at, expires_at, amr)
                VALUES ('fam-old', 7, 3, 1700000000, 1700086400, '["pwd"]')
                """,
                """
                INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at, used_at)
                VALUES ('hash-old', 'fam-old', 1700000000, 1700003600, NULL)
                """,
            ] {
                _ = try await connection.rows(statement)
            }
        }
        try await old.close()

        let store = try await self.openStore(path: path)
        try await store.transaction { tx in
            let family = try await tx.refreshFamily(id: "fam-old")
            XCTAssertEqual(family?.scope, .organization(id: 3))
            XCTAssertEqual(family?.authenticationMethods, ["pwd"])
            let token = try await tx.refreshToken(hash: "hash-old")
            XCTAssertEqual(token?.familyID, "fam-old")
            for (id, scope) in [("fam-g2", SessionScope.allClusters), ("fam-broker", .broker)] {
                try await tx.insertRefreshFamily(
                    RefreshFamily(
                        id: id, userID: 7, scope: scope, authenticatedAt: StoreFixture.t0,
                        expiresAt: StoreFixture.t0.addingTimeInterval(60), authenticationMethods: ["github_pat"],
                        accountVersions: .initial))
            }
            let families = try await tx.refreshFamilies(userID: 7)
            XCTAssertEqual(families.count, 3)
            let generation2 = try await tx.refreshFamily(id: "fam-g2")
            XCTAssertEqual(generation2?.scope, .allClusters)
        }
        let violations = try await store.withExclusiveConnection { connection in
            try await connection.rows("PRAGMA foreign_key_check").count
        }
        XCTAssertEqual(violations, 0)
        // The tokens still hang off their family: deleting the account removes all three.
        try await store.transaction { tx in
            let deleted = try await tx.deleteUser(id: 7)
            XCTAssertTrue(deleted)
            let token = try await tx.refreshToken(hash: "hash-old")
            XCTAssertNil(token)
            let families = try await tx.refreshFamilies(userID: 7)
            XCTAssertEqual(families.count, 0)
        }
    }

    /// Migration 14 (the portal) on a database holding a session: the session reads without an
    /// origin, a portal row can join it, and the row goes with the account.
    func testThePortalMigrationKeepsSessionsWithoutAnOrigin() async throws {
        let path = self.databasePath
        let old = try await SQLiteStore.open(
            path: path, logger: StoreFixture.logger, migrations: Schema.migrations.filter { $0.version < 14 })
        try await old.withExclusiveConnection { connection in
            for statement in [
                "INSERT INTO users (id, username, password_hash, is_active, created_at) VALUES (7, 'alice', NULL, 1, 0)",
                """
                INSERT INTO refresh_families (id, user_id, kind, authenticated_at, expires_at, amr)
                VALUES ('fam-old', 7, 'broker', 1700000000, 1700086400, '["pwd"]')
                """,
            ] {
                _ = try await connection.rows(statement)
            }
        }
        try await old.close()

        let store = try await self.openStore(path: path)
        let versions = try await store.appliedMigrationVersions()
        XCTAssertTrue(versions.contains(14), "\(versions)")
        let hash = String(repeating: "f", count: 64)
        try await store.transaction { tx in
            let family = try await tx.refreshFamily(id: "fam-old")
            XCTAssertEqual(family?.scope, .broker)
            XCTAssertNil(family?.origin, "no origin was recorded")
            try await tx.insertPortalSession(idHash: hash, familyID: "fam-old", at: StoreFixture.t0)
            let session = try await tx.portalSession(idHash: hash)
            XCTAssertEqual(session?.user?.id, 7)
            XCTAssertEqual(session?.family, family)
        }
        try await store.transaction { tx in
            _ = try await tx.deleteUser(id: 7)
            let session = try await tx.portalSession(idHash: hash)
            XCTAssertNil(session)
        }
        let violations = try await store.withExclusiveConnection { connection in
            try await connection.rows("PRAGMA foreign_key_check").count
        }
        XCTAssertEqual(violations, 0)
    }

    func testTheDatabaseFileIsCreatedWithMode0600() async throws {
        let store = try await self.openStore()
        _ = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("alice")) }
        for suffix in ["", "-wal"] {
            let path = self.databasePath + suffix
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            let permissions = try XCTUnwrap(attributes[.posixPermissions] as? NSNumber).intValue
            XCTAssertEqual(permissions & 0o777, 0o600, "mode of \(path) is \(String(permissions, radix: 8))")
        }
    }

    func testTheJournalIsWALAndWritesAreSynchronous() async throws {
        let store = try await self.openStore()
        let settings = try await store.withExclusiveConnection { connection in
            let mode = try await connection.rows("PRAGMA journal_mode").first?.string("journal_mode")
            let synchronous = try await connection.rows("PRAGMA synchronous").first?.int64("synchronous")
            let foreignKeys = try await connection.rows("PRAGMA foreign_keys").first?.int64("foreign_keys")
            let timeout = try await connection.rows("PRAGMA busy_timeout").first?.int64("timeout")
            return [mode ?? "", "\(synchronous ?? -1)", "\(foreignKeys ?? -1)", "\(timeout ?? -1)"]
        }
        // synchronous 1 = NORMAL: COMMIT appends to the log, CommitSync syncs it before the
        // transaction returns (GroupCommitTests).
        XCTAssertEqual(settings, ["wal", "1", "1", "5000"])
    }

    func testADatabaseWithANewerSchemaRefusesToOpen() async throws {
        let path = self.databasePath
        let future = Schema.migrations + [
            Migration(version: SQLiteStore.latestSchemaVersion + 1, statements: ["CREATE TABLE from_the_future (x INTEGER) STRICT"]),
        ]
        let newer = try await SQLiteStore.open(path: path, logger: StoreFixture.logger, migrations: future)
        try await newer.close()

        do {
            _ = try await self.openStore(path: path)
            XCTFail("a database from a newer broker was opened")
        } catch let StoreError.engine(message) {
            XCTAssertTrue(message.contains("newer"), message)
            XCTAssertTrue(message.contains("\(SQLiteStore.latestSchemaVersion + 1)"), message)
        }
    }

    func testAMissingParentDirectoryIsAClearError() async throws {
        let path = self.directory.appendingPathComponent("missing/broker.sqlite3").path
        do {
            _ = try await self.openStore(path: path)
            XCTFail("opened a database in a missing directory")
        } catch let StoreError.engine(message) {
            XCTAssertTrue(message.contains("does not exist"), message)
        }
    }

    func testAnInMemoryStoreWorks() async throws {
        let store = try await SQLiteStore.openInMemory(logger: StoreFixture.logger)
        self.openStores.append(store)
        let alice = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("alice")) }
        let found = try await store.transaction { tx in try await tx.user(id: alice.id) }
        XCTAssertEqual(found, alice)
    }
}

extension Task where Success: Sendable, Failure == any Error {
    /// The task's result, or `nil` if it has not finished within `timeout` (the task goes on:
    /// this only keeps a broken test from hanging).
    func result(within timeout: Duration) async -> Result<Success, any Error>? {
        let outcome = OneShot<Result<Success, any Error>?>()
        Task<Void, Never> { outcome.set(await self.result) }
        Task<Void, Never> {
            try? await Task<Never, Never>.sleep(for: timeout)
            outcome.set(nil)
        }
        return await outcome.value()
    }
}

/// A value set once (later sets are ignored) that tasks can wait for.
private final class OneShot<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value?
    private var isSet = false
    private var waiters: [CheckedContinuation<Value, Never>] = []

    func set(_ value: Value) {
        let waiters: [CheckedContinuation<Value, Never>] = self.lock.withLock {
            guard !self.isSet else { return [] }
            self.isSet = true
            self.stored = value
            defer { self.waiters = [] }
            return self.waiters
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    func value() async -> Value {
        await withCheckedContinuation { continuation in
            let ready: Value? = self.lock.withLock {
                if self.isSet { return self.stored }
                self.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// Records how many transaction bodies run at once.
private final class OverlapDetector: @unchecked Sendable {
    private let lock = NSLock()
    private var current = 0
    private var highest = 0

    func enter() {
        self.lock.withLock {
            self.current += 1
            self.highest = max(self.highest, self.current)
        }
    }

    func leave() {
        self.lock.withLock { self.current -= 1 }
    }

    var maximum: Int { self.lock.withLock { self.highest } }
}

/// A one-shot event tasks can wait for.
final class Signal: @unchecked Sendable {
    private let lock = NSLock()
    private var fired = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func fire() {
        let waiters = self.lock.withLock {
            self.fired = true
            defer { self.waiters = [] }
            return self.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let ready = self.lock.withLock {
                if self.fired { return true }
                self.waiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

}

extension SQLiteStoreTests {
    func testMigrationGivesLoginLinkedRowsANullGitHubIDWithAUniqueIndex() async throws {
        let path = self.databasePath
        // The schema as it was before GitHub user ids, with a row linked by login.
        let before = Array(Schema.migrations.prefix { !$0.statements.joined().contains("github_id") })
        XCTAssertLessThan(before.count, Schema.migrations.count)
        let old = try await SQLiteStore.open(path: path, logger: StoreFixture.logger, migrations: before)
        try await old.withExclusiveConnection { connection in
            _ = try await connection.rows(
                """
                INSERT INTO users (username, password_hash, is_active, created_at, github_login)
                VALUES ('alice', NULL, 1, 86400, 'Alice-GH'), ('bob', NULL, 1, 86400, NULL)
                """)
        }
        try await old.close()

        let store = try await self.openStore(path: path)
        let alice = try await store.read { tx in try await tx.user(named: "alice") }
        XCTAssertEqual(alice?.githubLogin, "Alice-GH")
        XCTAssertNil(alice?.githubID, "the id comes with the next verified login")
        let snapshot = try await store.accountSnapshot(githubID: 42, login: "alice-gh", organizations: [])
        XCTAssertEqual(snapshot.user, alice)
        try await store.transaction { tx in try await tx.setGitHubLink(userID: alice!.id, login: "Alice-GH", id: 42) }
        let recorded = try await store.read { tx in try await tx.user(githubID: 42) }
        XCTAssertEqual(recorded?.username, "alice")
        let bob = try await store.read { tx in try await tx.user(named: "bob") }
        await self.assertThrows(.duplicate("GitHub user id 42")) {
            try await store.transaction { tx in try await tx.setGitHubLink(userID: bob!.id, login: "bob-gh", id: 42) }
        }
        do {
            try await store.transaction { tx in try await tx.setGitHubLink(userID: bob!.id, login: "bob-gh", id: 0) }
            XCTFail("a GitHub user id is positive")
        } catch is StoreError {}
    }
}
