import BrokerCore
import Foundation
import XCTest

@testable import BrokerSQLite

/// Group commit (``CommitSync``): a transaction returns only once a sync that began after its
/// commit has ended, and the commits made while one sync runs share the next.
final class GroupCommitTests: XCTestCase {
    private var directory: URL!

    override func setUp() async throws {
        try await super.setUp()
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("group-commit-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
    }

    override func tearDown() async throws {
        try? FileManager.default.removeItem(at: self.directory)
        try await super.tearDown()
    }

    // MARK: CommitSync alone

    func testCommitsMadeDuringASyncShareTheNextOne() async throws {
        let disk = HeldDisk()
        let sync = CommitSync.start(syncToDisk: { disk.sync() })
        disk.hold()
        let first = sync.recordCommit()
        let firstReturned = Flag()
        let firstWait = Task {
            try await sync.waitUntilDurable(first)
            firstReturned.set()
        }
        try await disk.waitUntilASyncIsHeld()
        // Commits 2…11 arrive while sync 1 (which covers commit 1 only) is on the disk.
        let later = (0..<10).map { _ in sync.recordCommit() }
        let laterWaits = later.map { sequence in Task { try await sync.waitUntilDurable(sequence) } }
        XCTAssertFalse(firstReturned.isSet, "a commit returned before its sync ended")
        disk.release()
        try await firstWait.value
        for wait in laterWaits { try await wait.value }
        XCTAssertEqual(sync.syncsForTesting, 2, "ten waiting commits should have shared one sync")
        XCTAssertEqual(disk.syncs, 2)
        // Nothing pending: an already durable commit returns without a sync.
        try await sync.waitUntilDurable(later.last!)
        XCTAssertEqual(sync.syncsForTesting, 2)
        await sync.shutDown()
    }

    func testAFailedSyncFailsItsWaitersAndEveryLaterOne() async throws {
        let sync = CommitSync.start(syncToDisk: { throw StoreError.engine("EIO") })
        let first = sync.recordCommit()
        do {
            try await sync.waitUntilDurable(first)
            XCTFail("a failed sync reported the commit durable")
        } catch let error as StoreError {
            XCTAssertTrue("\(error)".contains("could not be synced"), "\(error)")
        }
        // The log's state is unknown from now on: later commits fail too, without a new sync.
        let second = sync.recordCommit()
        do {
            try await sync.waitUntilDurable(second)
            XCTFail("a commit after a failed sync was reported durable")
        } catch is StoreError {}
        XCTAssertEqual(sync.syncsForTesting, 1)
        await sync.shutDown()
    }

    // MARK: Through the store

    func testATransactionIsVisibleAtOnceButReturnsOnlyAfterTheSync() async throws {
        let disk = HeldDisk()
        let path = self.directory.appendingPathComponent("broker.sqlite3").path
        let store = try await SQLiteStore.open(
            path: path, logger: StoreFixture.logger, migrations: Schema.migrations, beforeEachSync: { disk.sync() })
        let observer = try await DatabaseConnection.open(.file(path: path), on: DatabaseThread.start(name: "observer"))
        func usernames() async throws -> [String] {
            try await observer.rows("SELECT username FROM users ORDER BY username").map { try $0.string("username") }
        }

        disk.hold()
        let aliceReturned = Flag()
        let alice = Task {
            _ = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("alice")) }
            aliceReturned.set()
        }
        try await disk.waitUntilASyncIsHeld()
        // Committed (another connection reads it) but not yet on disk: the caller still waits.
        let afterAlice = try await usernames()
        XCTAssertEqual(afterAlice, ["alice"])
        XCTAssertFalse(aliceReturned.isSet)

        // The gate is free meanwhile: five more transactions commit behind the held sync.
        let others = (0..<5).map { index in
            Task { _ = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("user\(index)")) } }
        }
        try await waitUntil { try await usernames().count == 6 }
        XCTAssertFalse(aliceReturned.isSet)

        let syncsBefore = try XCTUnwrap(store.commitSyncsForTesting)
        disk.release()
        try await alice.value
        for other in others { try await other.value }
        let syncs = try XCTUnwrap(store.commitSyncsForTesting) - syncsBefore
        XCTAssertEqual(syncs, 2, "alice's sync, then one for the five behind it")

        await observer.close()
        await observer.thread.shutDown()
        try await store.close()
    }

    func testInADurabilityScopeATransactionReturnsAtCommitAndTheScopeWaitsForTheSync() async throws {
        let disk = HeldDisk()
        let path = self.directory.appendingPathComponent("broker.sqlite3").path
        let store = try await SQLiteStore.open(
            path: path, logger: StoreFixture.logger, migrations: Schema.migrations, beforeEachSync: { disk.sync() })
        disk.hold()
        let transactionReturned = Flag()
        let scopeReturned = Flag()
        let operation = Task {
            try await DurabilityScope.run {
                _ = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("alice")) }
                transactionReturned.set()
            }
            scopeReturned.set()
        }
        try await disk.waitUntilASyncIsHeld()
        try await waitUntil { transactionReturned.isSet }
        XCTAssertFalse(scopeReturned.isSet, "the operation ended before its commit was on disk")
        disk.release()
        try await operation.value
        XCTAssertTrue(scopeReturned.isSet)

        // A task the operation left behind commits after the scope has settled: it waits itself.
        disk.hold()
        let lateReturned = Flag()
        let late = Task {
            try await DurabilityScope.run {
                _ = Task {
                    try await Task.sleep(for: .milliseconds(1))
                    _ = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("bob")) }
                    lateReturned.set()
                }
            }
        }
        try await late.value
        try await disk.waitUntilASyncIsHeld()
        XCTAssertFalse(lateReturned.isSet, "a commit after its scope settled returned before its sync")
        disk.release()
        try await waitUntil { lateReturned.isSet }
        try await store.close()
    }

    func testTheLogIsCheckpointedOffTheWriteThreadAndStaysSmall() async throws {
        let path = self.directory.appendingPathComponent("broker.sqlite3").path
        let store = try await SQLiteStore.open(path: path, logger: StoreFixture.logger)
        let writeThreadThreshold = try await store.withExclusiveConnection { connection in
            try await connection.rows("PRAGMA wal_autocheckpoint").first?.int64("wal_autocheckpoint")
        }
        XCTAssertEqual(writeThreadThreshold, Int64(WALCheckpointer.fallbackPages))
        let rounds = 5 * WALCheckpointer.commitsPerCheckpoint
        for index in 0..<rounds {
            _ = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("user\(index)")) }
        }
        try await waitUntil { (store.checkpointsForTesting ?? 0) >= 4 }
        // Without the checkpointer the log would hold every commit's pages up to the fallback
        // threshold (10,000 pages, ~40 MB); with it, about what 200 commits write.
        let logBytes = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int)
        XCTAssertLessThan(logBytes, 8 << 20, "the log grew to \(logBytes) bytes")
        let users = try await store.read { tx in try await tx.users().count }
        XCTAssertEqual(users, rounds)
        try await store.close()
    }

    func testWhenTheDiskFailsASyncTheTransactionAndEveryLaterOneFail() async throws {
        let path = self.directory.appendingPathComponent("broker.sqlite3").path
        let failing = Flag()
        let store = try await SQLiteStore.open(
            path: path, logger: StoreFixture.logger, migrations: Schema.migrations,
            beforeEachSync: { if failing.isSet { throw StoreError.engine("EIO") } })
        _ = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("alice")) }
        failing.set()
        for name in ["bob", "carol"] {
            do {
                _ = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser(name)) }
                XCTFail("\(name)'s transaction returned although its sync failed")
            } catch let error as StoreError {
                XCTAssertTrue("\(error)".contains("restart the broker"), "\(error)")
            }
        }
        try await store.close()
    }

    private func waitUntil(_ condition: () async throws -> Bool) async throws {
        for _ in 0..<1000 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(5))
        }
        XCTFail("condition not met within 5 s")
    }
}

/// A disk whose syncs can be held back until released.
private final class HeldDisk: @unchecked Sendable {
    private let condition = NSCondition()
    private var isHeld = false
    private var heldSyncs = 0
    private var count = 0

    func hold() { self.condition.withLock { self.isHeld = true } }

    func release() {
        self.condition.withLock {
            self.isHeld = false
            self.condition.broadcast()
        }
    }

    /// Called on the sync thread.
    func sync() {
        self.condition.withLock {
            self.count += 1
            self.heldSyncs += 1
            self.condition.broadcast()
            while self.isHeld { self.condition.wait() }
            self.heldSyncs -= 1
        }
    }

    var syncs: Int { self.condition.withLock { self.count } }

    func waitUntilASyncIsHeld() async throws {
        for _ in 0..<1000 {
            if self.condition.withLock({ self.heldSyncs > 0 }) { return }
            try await Task.sleep(for: .milliseconds(5))
        }
        XCTFail("no sync started within 5 s")
    }
}

private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { self.lock.withLock { self.value = true } }
    var isSet: Bool { self.lock.withLock { self.value } }
}
