import BrokerCore
import BrokerSQLite
import BrokerSync
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import BrokerPostgres

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What only a shared engine needs: several pools (replicas) on one database racing for the same
/// rows, conflicts retried, schema versions shared with SQLite, and an unreachable server
/// answering `.unavailable` in bounded time. Engine-independent behaviour is in
/// ``StoreConformanceTests``.
final class PostgresStoreTests: PostgresDatabaseTestCase {
    // MARK: Schema

    func testTheSchemaStartsAtSQLitesVersionAndIsAppliedOnce() async throws {
        let first = try await self.replica()
        let second = try await self.replica()
        let versionsFirst = try await first.appliedMigrationVersions()
        XCTAssertEqual(versionsFirst, Array(10...PostgresStore.latestSchemaVersion), "one baseline equal to SQLite's 1...10, then each step as in SQLite")
        XCTAssertEqual(PostgresStore.latestSchemaVersion, SQLiteStore.latestSchemaVersion, "both engines share version numbers")
        let versionsSecond = try await second.appliedMigrationVersions()
        XCTAssertEqual(versionsSecond, Array(10...PostgresStore.latestSchemaVersion))
    }

    func testReplicasStartingAtOnceMigrateOnce() async throws {
        self.database = try await PostgresTestDatabase.create()
        let settings = self.database!.settings()
        let opened = try await withThrowingTaskGroup(of: PostgresStore.self) { group in
            for _ in 0..<4 { group.addTask { try await PostgresStore.open(settings, logger: StoreFixture.logger) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        self.stores += opened
        let versions = try await opened[0].appliedMigrationVersions()
        XCTAssertEqual(versions, Array(10...PostgresStore.latestSchemaVersion))
    }

    func testADatabaseWithANewerSchemaRefusesToOpen() async throws {
        let future = PostgresSchema.migrations + [
            PostgresMigration(version: PostgresStore.latestSchemaVersion + 1, statements: ["CREATE TABLE from_the_future (x INT)"])
        ]
        _ = try await self.replica(migrations: future)
        do {
            _ = try await self.replica()
            XCTFail("a newer schema was opened")
        } catch let StoreError.engine(message) {
            XCTAssertTrue(message.contains("\(PostgresStore.latestSchemaVersion + 1)"), message)
            XCTAssertTrue(message.contains("upgrade the broker"), message)
        }
    }

    /// Migration 14 (the portal) on a database holding a session: one ALTER adds both origin
    /// columns, the session reads without an origin, and a portal row can join it.
    func testThePortalMigrationKeepsSessionsWithoutAnOrigin() async throws {
        let old = try await self.replica(migrations: PostgresSchema.migrations.filter { $0.version < 14 })
        try await old.withConnection { connection in
            let statements: [PostgresQuery] = [
                "INSERT INTO users (id, username, is_active, created_at) VALUES (7, 'alice', true, 0)",
                """
                INSERT INTO refresh_families (id, user_id, kind, authenticated_at, expires_at, amr)
                VALUES ('fam-old', 7, 'broker', 1700000000, 1700086400, ARRAY['pwd'])
                """,
            ]
            for statement in statements { _ = try await connection.query(statement, logger: StoreFixture.logger).collect() }
        }
        let store = try await self.replica()
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
    }

    // MARK: Races between replicas

    /// Uniqueness is the constraint's: two replicas inserting one name at the same moment, one
    /// wins, the other is told the name is taken, never both.
    func testTwoReplicasInsertingOneNameAtOnceOneWins() async throws {
        let first = try await self.replica()
        let second = try await self.replica()
        for round in 0..<10 {
            let name = "racer-\(round)"
            let outcomes = try await withThrowingTaskGroup(of: Result<Int64, StoreError>.self) { group in
                for store in [first, second] {
                    group.addTask {
                        do {
                            let user = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser(name)) }
                            return .success(user.id)
                        } catch let error as StoreError {
                            return .failure(error)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let failures = outcomes.compactMap { outcome -> StoreError? in
                if case .failure(let error) = outcome { return error }
                return nil
            }
            XCTAssertEqual(outcomes.count - failures.count, 1, "round \(round): \(outcomes)")
            XCTAssertEqual(failures, [.duplicate("user \(name)")], "round \(round)")
        }
        let count = try await first.read { tx in try await tx.users().count }
        XCTAssertEqual(count, 10)
    }

    /// The heart of refresh-token reuse detection across replicas: two transactions read the same
    /// unused token, each on its own replica, before either marks it used. Exactly one commits
    /// its use; the other is aborted by PostgreSQL, run again by the store, and then sees the
    /// token used (which the refresh service treats as reuse).
    func testTwoReplicasUsingOneRefreshTokenAtOnceExactlyOneSeesItUnused() async throws {
        let first = try await self.replica()
        let second = try await self.replica()
        let (user, org) = try await StoreFixture.seedUserAndOrganization(first)
        let hash = String(repeating: "ab", count: 32)
        try await self.startSession("fam-race", holding: hash, of: user, in: org, on: first)
        let bothRead = Rendezvous(parties: 2)
        let bodies = Locked(0)
        let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
            for (index, store) in [first, second].enumerated() {
                group.addTask {
                    try await store.transaction { tx in
                        bodies.withLock { $0 += 1 }
                        let token = try await tx.refreshToken(hash: hash)
                        // Both read before either writes (first runs only; a rerun goes on alone).
                        await bothRead.arrive()
                        guard token?.usedAt == nil else { return "saw it used" }
                        try await tx.markRefreshTokenUsed(hash: hash, at: StoreFixture.t0.addingTimeInterval(Double(index + 1)))
                        return "used it"
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(outcomes.sorted(), ["saw it used", "used it"])
        XCTAssertGreaterThanOrEqual(bodies.withLock { $0 }, 3, "the loser ran again")
        let retries = first.retries.withLock { $0 } + second.retries.withLock { $0 }
        XCTAssertGreaterThanOrEqual(retries, 1)
    }

    /// A renewal's read locks its token (``StoreTransaction/renewal(ofTokenHash:)`` in a locking
    /// transaction): a second renewal of the token at another replica waits for the first instead
    /// of reading alongside it, then reads the token as the first left it, with nothing run
    /// again.
    func testASecondRenewalOfATokenWaitsForTheFirstAndReadsItUsed() async throws {
        let first = try await self.replica()
        let second = try await self.replica()
        let (user, org) = try await StoreFixture.seedUserAndOrganization(first)
        let hash = String(repeating: "cd", count: 32)
        try await self.startSession("fam-lock", holding: hash, of: user, in: org, on: first)
        let holding = Signal()
        let secondWaits = Signal()
        let usedAt = StoreFixture.t0.addingTimeInterval(5)
        let renewing = Task {
            try await first.lockingTransaction { tx in
                let renewal = try await tx.renewal(ofTokenHash: hash)
                XCTAssertNil(renewal?.token.usedAt)
                holding.fire()
                await secondWaits.wait()
                try await tx.markRefreshTokenUsed(hash: hash, at: usedAt)
            }
        }
        await holding.wait()
        let waiting = Task {
            try await second.lockingTransaction { tx in try await tx.renewal(ofTokenHash: hash) }
        }
        // The second renewal is blocked on a lock (the server says so), not done.
        try await self.waitUntil("the second renewal waits for the token's lock") {
            try await self.transactionsWaitingForALock(on: first) == 1
        }
        secondWaits.fire()
        try await renewing.value
        let seen = try await waiting.value
        XCTAssertEqual(seen?.token.usedAt?.timeIntervalSince1970 ?? 0, usedAt.timeIntervalSince1970, accuracy: 0.001)
        XCTAssertEqual(first.retries.withLock { $0 } + second.retries.withLock { $0 }, 0, "it waited; nothing ran again")
    }

    /// The one deadlock a renewal's lock allows: an account deleted while one of its sessions
    /// renews (the delete's cascade waits for the locked token, the successor's foreign key for
    /// the deleted session). PostgreSQL breaks it, the store runs the aborted transaction again,
    /// and both end: the account is gone with every token, the renewal's included.
    func testAnAccountDeletedWhileItsSessionRenewsIsGoneAndBothTransactionsEnd() async throws {
        let first = try await self.replica()
        let second = try await self.replica()
        let (user, org) = try await StoreFixture.seedUserAndOrganization(first)
        let hash = String(repeating: "ef", count: 32)
        let successor = String(repeating: "0f", count: 32)
        let successorToken = Self.token(successor, of: "fam-gone")
        try await self.startSession("fam-gone", holding: hash, of: user, in: org, on: first)
        let holding = Signal()
        let deleteWaits = Signal()
        let renewing = Task {
            try await first.lockingTransaction { tx -> Bool in
                let renewal = try await tx.renewal(ofTokenHash: hash)
                holding.fire()
                await deleteWaits.wait()
                guard renewal != nil else { return false }
                try await tx.markRefreshTokenUsed(hash: hash, at: StoreFixture.t0.addingTimeInterval(1))
                try await tx.insertRefreshToken(successorToken)
                return true
            }
        }
        await holding.wait()
        let deleting = Task { try await second.transaction { tx in try await tx.deleteUser(id: user) } }
        try await self.waitUntil("the delete waits for the renewal's token") {
            try await self.transactionsWaitingForALock(on: first) == 1
        }
        deleteWaits.fire()
        _ = try await renewing.value
        let deleted = try await deleting.value
        XCTAssertTrue(deleted)
        let left = try await first.read { tx in
            (try await tx.user(id: user), try await tx.refreshToken(hash: hash), try await tx.refreshToken(hash: successor))
        }
        XCTAssertNil(left.0)
        XCTAssertNil(left.1)
        XCTAssertNil(left.2)
        XCTAssertGreaterThanOrEqual(first.retries.withLock { $0 } + second.retries.withLock { $0 }, 1, "the deadlock's victim ran again")
    }

    private func transactionsWaitingForALock(on store: PostgresStore) async throws -> Int64 {
        try await store.withConnection { connection in
            try await connection.query(
                "SELECT count(*)::int8 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                logger: StoreFixture.logger
            ).collect().first!.decode(Int64.self)
        }
    }

    /// A session (refresh family) of `user` in `org` holding the unused refresh token `hash`.
    private func startSession(
        _ familyID: String, holding hash: String, of user: Int64, in org: Int64, on store: PostgresStore
    ) async throws {
        try await store.transaction { tx in
            try await tx.insertRefreshFamily(StoreFixture.family(familyID, user: user, org: org))
            try await tx.insertRefreshToken(Self.token(hash, of: familyID))
        }
    }

    private static func token(_ hash: String, of familyID: String) -> RefreshTokenRecord {
        RefreshTokenRecord(
            tokenHash: hash, familyID: familyID, issuedAt: StoreFixture.t0, expiresAt: StoreFixture.t0.addingTimeInterval(3_600))
    }

    /// Polls `condition` until it holds, for at most 10 s.
    private func waitUntil(_ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while try await !condition() {
            guard ContinuousClock.now < deadline else { return XCTFail("never: \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Write skew, the anomaly SERIALIZABLE exists to prevent: each transaction checks that no
    /// admin exists besides the one it reads, then acts on that. Under snapshot isolation both
    /// would commit; here one is aborted with a serialization failure and retried, and its rerun
    /// sees the other's write.
    func testASerializationFailureIsRetriedAndTheRetrySeesTheWinnersWrite() async throws {
        let first = try await self.replica()
        let second = try await self.replica()
        let bothRead = Rendezvous(parties: 2)
        let bodies = Locked(0)
        let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
            for (index, store) in [first, second].enumerated() {
                group.addTask {
                    try await store.transaction { tx in
                        bodies.withLock { $0 += 1 }
                        let admins = try await tx.users().filter(\.isAdmin)
                        await bothRead.arrive()
                        guard admins.isEmpty else { return false }
                        var user = StoreFixture.newUser("first-admin-\(index)")
                        user.globalRole = .admin
                        _ = try await tx.insertUser(user)
                        return true
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(outcomes.filter { $0 }.count, 1, "exactly one became the first admin")
        let admins = try await first.read { tx in try await tx.users().filter(\.isAdmin).count }
        XCTAssertEqual(admins, 1)
        XCTAssertEqual(bodies.withLock { $0 }, 3, "two first runs and one retry")
        XCTAssertEqual(first.retries.withLock { $0 } + second.retries.withLock { $0 }, 1)
    }

    func testAnExplicitUserIDAdvancesTheSequence() async throws {
        let store = try await self.replica()
        let imported = try await store.transaction { tx in
            var user = StoreFixture.newUser("imported")
            user.preferredID = 500
            return try await tx.insertUser(user)
        }
        XCTAssertEqual(imported.id, 500)
        let next = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("next")) }
        XCTAssertGreaterThan(next.id, 500)
    }

    // MARK: Bounded waits

    /// A statement waiting for a lock another replica holds ends at the statement timeout with
    /// `.unavailable` (a 503), not when the holder lets go.
    func testAStatementBlockedPastTheStatementTimeoutIsUnavailable() async throws {
        let holder = try await self.replica()
        let (user, _) = try await StoreFixture.seedUserAndOrganization(holder)
        var settings = self.database!.settings()
        settings.statementTimeout = .seconds(1)
        let waiter = try await PostgresStore.open(settings, logger: StoreFixture.logger)
        self.stores.append(waiter)
        let holding = Signal()
        let release = Signal()
        let held = Task {
            try await holder.transaction { tx in
                try await tx.setUserActive(userID: user, false)
                holding.fire()
                await release.wait()
            }
        }
        await holding.wait()
        let started = ContinuousClock.now
        do {
            try await waiter.transaction { tx in try await tx.setUserActive(userID: user, true) }
            XCTFail("the blocked update went through")
        } catch let error as StoreError {
            guard case .unavailable = error else { return XCTFail("expected unavailable, got \(error)") }
        }
        let waited = ContinuousClock.now - started
        release.fire()
        try await held.value
        XCTAssertLessThan(waited, .seconds(5), "the statement timeout (1 s) ended the wait")
    }

    /// Every connection of the pool is busy: the next transaction gives up after the connect
    /// timeout with `.unavailable`.
    func testAnExhaustedPoolIsUnavailableAfterTheConnectTimeout() async throws {
        _ = try await self.replica()
        let settings = self.database!.settings(poolSize: 1, connectTimeout: .seconds(1))
        let store = try await PostgresStore.open(settings, logger: StoreFixture.logger)
        self.stores.append(store)
        let holding = Signal()
        let release = Signal()
        let held = Task {
            try await store.transaction { _ in
                holding.fire()
                await release.wait()
            }
        }
        await holding.wait()
        let started = ContinuousClock.now
        do {
            _ = try await store.read { tx in try await tx.users() }
            XCTFail("a second connection was leased from a pool of one")
        } catch let error as StoreError {
            guard case .unavailable = error else { return XCTFail("expected unavailable, got \(error)") }
        }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(4))
        release.fire()
        try await held.value
        let users = try await store.read { tx in try await tx.users() }
        XCTAssertEqual(users, [], "the pool serves again once the connection is back")
    }

    /// The server cuts every connection of a replica (a restart, a failover, an administrator):
    /// the replica's next transactions succeed on new connections, without a restart.
    func testAReplicaWhoseConnectionsWereCutRecoversByItself() async throws {
        let store = try await self.replica()
        _ = try await StoreFixture.seedUserAndOrganization(store)
        try await PostgresAdministration.execute(
            """
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = '\(self.database!.name)' AND pid <> pg_backend_pid()
            """,
            on: PostgresStore.Settings(url: self.database!.admin), logger: StoreFixture.logger)
        for _ in 0..<3 {
            let names = try await store.read { tx in try await tx.users().map(\.username) }
            XCTAssertEqual(names, ["alice"])
        }
        try await store.transaction { tx in _ = try await tx.insertUser(StoreFixture.newUser("bob")) }
    }

    // MARK: Unreachable

    /// Nothing listens on the port: the store says `.unavailable` within the connect timeout
    /// (the pool alone would keep retrying), and the message names no password. Needs no server.
    func testAnUnreachableServerIsUnavailableWithinTheConnectTimeout() async throws {
        let port = try Self.closedPort()
        let url = try DatabaseURL(parsing: "postgres://broker:Sup3rSecretPw@127.0.0.1:\(port)/broker")
        let lines = CapturedLines()
        let logger = Logger(label: "unreachable") { _ in CapturingLogHandler(lines: lines) }
        let started = ContinuousClock.now
        do {
            let store = try await PostgresStore.open(
                PostgresStore.Settings(url: url, poolSize: 2, connectTimeout: .seconds(1)), logger: logger)
            try await store.close()
            XCTFail("a store opened on a closed port")
        } catch let error as StoreError {
            guard case .unavailable(let message) = error else { return XCTFail("expected unavailable, got \(error)") }
            XCTAssertFalse(message.contains("Sup3rSecretPw"), message)
        }
        let elapsed = ContinuousClock.now - started
        XCTAssertLessThan(elapsed, .seconds(4), "bounded by the connect timeout (1 s), not a hang")
        XCTAssertFalse(lines.all.contains { $0.contains("Sup3rSecretPw") }, "\(lines.all)")
        XCTAssertFalse("\(url)".contains("Sup3rSecretPw"))
    }

    /// A port nothing listens on (bound, then closed).
    static func closedPort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EBADF) }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Lets `parties` tasks wait for each other once; later arrivals (a transaction's rerun) pass at
/// once.
final class Rendezvous: Sendable {
    private let state: Locked<(arrived: Int, waiters: [CheckedContinuation<Void, Never>])> = Locked((0, []))
    private let parties: Int

    init(parties: Int) { self.parties = parties }

    func arrive() async {
        await withCheckedContinuation { continuation in
            let release: [CheckedContinuation<Void, Never>] = self.state.withLock { state in
                state.arrived += 1
                if state.arrived < self.parties {
                    state.waiters.append(continuation)
                    return []
                }
                defer { state.waiters = [] }
                return state.waiters + [continuation]
            }
            for waiter in release { waiter.resume() }
        }
    }
}

/// Every line logged through a ``CapturingLogHandler``.
final class CapturedLines: Sendable {
    private let lines = Locked<[String]>([])
    func append(_ line: String) { self.lines.withLock { $0.append(line) } }
    var all: [String] { self.lines.withLock { $0 } }
}

struct CapturingLogHandler: LogHandler {
    let lines: CapturedLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
        self.lines.append("\(event.level) \(event.message) \(merged) \(event.error.map { "\($0)" } ?? "")")
    }
}
