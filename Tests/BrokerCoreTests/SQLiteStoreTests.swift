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
        let store = try await SQLiteStore.open(path: path ?? self.databasePath, logger: Fixture.logger)
        self.openStores.append(store)
        return store
    }

    private func assertThrows(
        _ expected: StoreError,
        file: StaticString = #filePath,
        line: UInt = #line,
        _ body: () async throws -> Void
    ) async {
        do {
            try await body()
            XCTFail("expected \(expected), nothing was thrown", file: file, line: line)
        } catch let error as StoreError {
            XCTAssertEqual(error, expected, file: file, line: line)
        } catch {
            XCTFail("expected \(expected), got \(error)", file: file, line: line)
        }
    }

    // MARK: Users

    func testUserCRUD() async throws {
        let store = try await self.openStore()
        let created = try await store.transaction { tx in
            let alice = try await tx.insertUser(Fixture.newUser("alice"))
            let bob = try await tx.insertUser(
                NewUser(username: "bob", passwordHash: nil, isActive: false, createdAt: Fixture.date(1_700_000_123.456))
            )
            return (alice, bob)
        }
        XCTAssertNotEqual(created.0.id, created.1.id)
        XCTAssertEqual(created.1.passwordHash, nil)

        try await store.transaction { tx in
            let alice = try await tx.user(named: "alice")
            XCTAssertEqual(alice, created.0)
            let bob = try await tx.user(id: created.1.id)
            XCTAssertEqual(bob?.username, "bob")
            XCTAssertEqual(bob?.passwordHash, nil)
            XCTAssertEqual(bob?.isActive, false)
            XCTAssertEqual(bob!.createdAt.timeIntervalSince1970, 1_700_000_123.456, accuracy: 0.001)
            let missingByName = try await tx.user(named: "carol")
            XCTAssertNil(missingByName)
            let missingByID = try await tx.user(id: 9_999)
            XCTAssertNil(missingByID)
            let all = try await tx.users()
            XCTAssertEqual(all.map(\.username), ["alice", "bob"])
            XCTAssertEqual(all.map(\.id), all.map(\.id).sorted())
        }

        try await store.transaction { tx in
            try await tx.updatePasswordHash(userID: created.0.id, to: "$argon2id$v=19$other")
            try await tx.updatePasswordHash(userID: created.1.id, to: "$argon2id$v=19$bob")
            try await tx.setUserActive(userID: created.0.id, false)
            try await tx.setUserActive(userID: created.1.id, true)
        }
        try await store.transaction { tx in
            let alice = try await tx.user(id: created.0.id)
            XCTAssertEqual(alice?.passwordHash, "$argon2id$v=19$other")
            XCTAssertEqual(alice?.isActive, false)
            let bob = try await tx.user(id: created.1.id)
            XCTAssertEqual(bob?.passwordHash, "$argon2id$v=19$bob")
            XCTAssertEqual(bob?.isActive, true)
            try await tx.updatePasswordHash(userID: created.0.id, to: nil)
            let cleared = try await tx.user(id: created.0.id)
            XCTAssertNil(cleared?.passwordHash)
        }
    }

    func testUpdatingAnAbsentUserThrowsNotFound() async throws {
        let store = try await self.openStore()
        await self.assertThrows(.notFound("user 42")) {
            try await store.transaction { tx in try await tx.updatePasswordHash(userID: 42, to: "x") }
        }
        await self.assertThrows(.notFound("user 42")) {
            try await store.transaction { tx in try await tx.setUserActive(userID: 42, true) }
        }
    }

    func testDuplicateUsernameThrowsDuplicateWithoutTheHash() async throws {
        let store = try await self.openStore()
        _ = try await store.transaction { tx in try await tx.insertUser(Fixture.newUser("alice")) }
        do {
            _ = try await store.transaction { tx in
                try await tx.insertUser(Fixture.newUser("alice", hash: "$argon2id$v=19$SECRET-HASH"))
            }
            XCTFail("a second alice was inserted")
        } catch let error as StoreError {
            XCTAssertEqual(error, .duplicate("user alice"))
            XCTAssertFalse("\(error)".contains("SECRET-HASH"))
        }
    }

    /// Names are compared by their key (``AccountName``), not byte for byte: `alice` is `Alice`.
    func testUsernamesAreComparedAsAPersonReadsThem() async throws {
        let store = try await self.openStore()
        let upper = try await store.transaction { tx in try await tx.insertUser(Fixture.newUser("Alice")) }
        await self.assertThrows(.duplicate("user alice")) {
            _ = try await store.transaction { tx in try await tx.insertUser(Fixture.newUser("alice")) }
        }
        try await store.transaction { tx in
            for spelling in ["Alice", "alice", "ALICE"] {
                let found = try await tx.user(named: spelling)
                XCTAssertEqual(found?.id, upper.id, spelling)
                XCTAssertEqual(found?.username, "Alice", "stored as first spelled")
            }
        }
    }

    // MARK: Organizations

    func testOrganizationCRUDOrderedByName() async throws {
        let store = try await self.openStore()
        let created = try await store.transaction { tx in
            let zoo = try await tx.insertOrganization(name: "zoology", clusterName: "zoo", createdAt: Fixture.t0)
            let bio = try await tx.insertOrganization(name: "biology", clusterName: "bio", createdAt: Fixture.t0)
            return (zoo, bio)
        }
        XCTAssertEqual(created.0.name, "zoology")
        XCTAssertEqual(created.0.clusterName, "zoo")
        try await store.transaction { tx in
            let byName = try await tx.organization(named: "zoology")
            XCTAssertEqual(byName, created.0)
            let byID = try await tx.organization(id: created.1.id)
            XCTAssertEqual(byID, created.1)
            let missingByName = try await tx.organization(named: "zoo")
            XCTAssertNil(missingByName)
            let missingByID = try await tx.organization(id: 12_345)
            XCTAssertNil(missingByID)
            let all = try await tx.organizations()
            XCTAssertEqual(all.map(\.name), ["biology", "zoology"])
        }
    }

    func testDuplicateOrganizationNameOrClusterName() async throws {
        let store = try await self.openStore()
        _ = try await store.transaction { tx in
            try await tx.insertOrganization(name: "physics", clusterName: "phys", createdAt: Fixture.t0)
        }
        await self.assertThrows(.duplicate("organization physics")) {
            _ = try await store.transaction { tx in
                try await tx.insertOrganization(name: "physics", clusterName: "other", createdAt: Fixture.t0)
            }
        }
        await self.assertThrows(.duplicate("organization cluster name phys")) {
            _ = try await store.transaction { tx in
                try await tx.insertOrganization(name: "chemistry", clusterName: "phys", createdAt: Fixture.t0)
            }
        }
        let count = try await store.transaction { tx in try await tx.organizations().count }
        XCTAssertEqual(count, 1)
    }

    // MARK: Memberships

    func testUpsertMembershipReplacesRole() async throws {
        let store = try await self.openStore()
        let (user, org) = try await Fixture.seedUserAndOrganization(store)
        try await store.transaction { tx in
            try await tx.upsertMembership(
                Membership(organizationID: org, userID: user, role: .member, isActive: true, createdAt: Fixture.t0)
            )
        }
        let later = Fixture.t0.addingTimeInterval(60)
        try await store.transaction { tx in
            try await tx.upsertMembership(
                Membership(organizationID: org, userID: user, role: .admin, isActive: false, createdAt: later)
            )
        }
        let membership = try await store.transaction { tx in
            try await tx.membership(organizationID: org, userID: user)
        }
        XCTAssertEqual(
            membership,
            Membership(organizationID: org, userID: user, role: .admin, isActive: false, createdAt: later)
        )
        let listed = try await store.transaction { tx in try await tx.members(organizationID: org) }
        XCTAssertEqual(listed.count, 1)
        let absent = try await store.transaction { tx in try await tx.membership(organizationID: org, userID: 999) }
        XCTAssertNil(absent)
    }

    func testMembershipOfAMissingUserOrOrganizationThrowsNotFound() async throws {
        let store = try await self.openStore()
        let (user, org) = try await Fixture.seedUserAndOrganization(store)
        await self.assertThrows(.notFound("user 999")) {
            try await store.transaction { tx in
                try await tx.upsertMembership(
                    Membership(organizationID: org, userID: 999, role: .member, isActive: true, createdAt: Fixture.t0)
                )
            }
        }
        await self.assertThrows(.notFound("organization 999")) {
            try await store.transaction { tx in
                try await tx.upsertMembership(
                    Membership(organizationID: 999, userID: user, role: .member, isActive: true, createdAt: Fixture.t0)
                )
            }
        }
    }

    func testMembersOrderedByUsername() async throws {
        let store = try await self.openStore()
        let org = try await store.transaction { tx in
            let org = try await tx.insertOrganization(name: "physics", clusterName: "physics", createdAt: Fixture.t0)
            let other = try await tx.insertOrganization(name: "other", clusterName: "other", createdAt: Fixture.t0)
            // Inserted out of order; "Zed" sorts before "alice" in binary collation.
            for (name, role) in [("mallory", Role.member), ("alice", .owner), ("Zed", .admin), ("bob", .member)] {
                let user = try await tx.insertUser(Fixture.newUser(name))
                try await tx.upsertMembership(
                    Membership(organizationID: org.id, userID: user.id, role: role, isActive: true, createdAt: Fixture.t0)
                )
            }
            let outsider = try await tx.insertUser(Fixture.newUser("outsider"))
            try await tx.upsertMembership(
                Membership(organizationID: other.id, userID: outsider.id, role: .member, isActive: true, createdAt: Fixture.t0)
            )
            return org.id
        }
        let members = try await store.transaction { tx in try await tx.members(organizationID: org) }
        XCTAssertEqual(members.map(\.username), ["Zed", "alice", "bob", "mallory"])
        XCTAssertEqual(members.map(\.membership.role), [.admin, .owner, .member, .member])
        XCTAssertTrue(members.allSatisfy { $0.membership.organizationID == org })
        let none = try await store.transaction { tx in try await tx.members(organizationID: 4_242) }
        XCTAssertEqual(none, [])
    }

    func testDeleteMembership() async throws {
        let store = try await self.openStore()
        let (user, org) = try await Fixture.seedUserAndOrganization(store)
        try await store.transaction { tx in
            try await tx.upsertMembership(
                Membership(organizationID: org, userID: user, role: .owner, isActive: true, createdAt: Fixture.t0)
            )
        }
        let first = try await store.transaction { tx in try await tx.deleteMembership(organizationID: org, userID: user) }
        XCTAssertTrue(first)
        let second = try await store.transaction { tx in try await tx.deleteMembership(organizationID: org, userID: user) }
        XCTAssertFalse(second)
        let gone = try await store.transaction { tx in try await tx.membership(organizationID: org, userID: user) }
        XCTAssertNil(gone)
    }

    // MARK: Refresh families and tokens

    func testRefreshFamilyInsertAndRevokeKeepsTheFirstReason() async throws {
        let store = try await self.openStore()
        let (user, org) = try await Fixture.seedUserAndOrganization(store)
        let family = Fixture.family("fam-1", user: user, org: org)
        try await store.transaction { tx in try await tx.insertRefreshFamily(family) }

        let stored = try await store.transaction { tx in try await tx.refreshFamily(id: "fam-1") }
        XCTAssertEqual(stored, family)
        XCTAssertEqual(stored?.authenticationMethods, ["pwd", "otp"])
        let missing = try await store.transaction { tx in try await tx.refreshFamily(id: "nope") }
        XCTAssertNil(missing)

        let firstRevocation = Fixture.t0.addingTimeInterval(100)
        try await store.transaction { tx in
            try await tx.revokeRefreshFamily(id: "fam-1", at: firstRevocation, reason: "reuse detected")
        }
        try await store.transaction { tx in
            try await tx.revokeRefreshFamily(id: "fam-1", at: Fixture.t0.addingTimeInterval(200), reason: "logout")
        }
        let revoked = try await store.transaction { tx in try await tx.refreshFamily(id: "fam-1") }
        XCTAssertEqual(revoked?.revokedAt, firstRevocation)
        XCTAssertEqual(revoked?.revocationReason, "reuse detected")

        await self.assertThrows(.notFound("refresh family nope")) {
            try await store.transaction { tx in try await tx.revokeRefreshFamily(id: "nope", at: Fixture.t0, reason: "x") }
        }
        await self.assertThrows(.duplicate("refresh family fam-1")) {
            try await store.transaction { tx in try await tx.insertRefreshFamily(family) }
        }
        await self.assertThrows(.notFound("user 77")) {
            try await store.transaction { tx in try await tx.insertRefreshFamily(Fixture.family("fam-2", user: 77, org: org)) }
        }
    }

    func testRefreshTokenInsertLookupAndMarkUsed() async throws {
        let store = try await self.openStore()
        let (user, org) = try await Fixture.seedUserAndOrganization(store)
        let hash = String(repeating: "ab", count: 32)
        let token = RefreshTokenRecord(
            tokenHash: hash, familyID: "fam-1", issuedAt: Fixture.t0, expiresAt: Fixture.t0.addingTimeInterval(3_600)
        )
        try await store.transaction { tx in
            try await tx.insertRefreshFamily(Fixture.family("fam-1", user: user, org: org))
            try await tx.insertRefreshToken(token)
        }
        let stored = try await store.transaction { tx in try await tx.refreshToken(hash: hash) }
        XCTAssertEqual(stored, token)
        XCTAssertNil(stored?.usedAt)
        let missing = try await store.transaction { tx in try await tx.refreshToken(hash: "00") }
        XCTAssertNil(missing)

        let usedAt = Fixture.date(1_700_000_010.25)
        try await store.transaction { tx in try await tx.markRefreshTokenUsed(hash: hash, at: usedAt) }
        // A second mark keeps the first use: the grace window must not be extended.
        try await store.transaction { tx in
            try await tx.markRefreshTokenUsed(hash: hash, at: usedAt.addingTimeInterval(30))
        }
        let used = try await store.transaction { tx in try await tx.refreshToken(hash: hash) }
        XCTAssertEqual(used!.usedAt!.timeIntervalSince1970, usedAt.timeIntervalSince1970, accuracy: 0.001)

        await self.assertThrows(.notFound("refresh token 000000000000…")) {
            try await store.transaction { tx in
                try await tx.markRefreshTokenUsed(hash: String(repeating: "0", count: 64), at: usedAt)
            }
        }
        await self.assertThrows(.notFound("refresh family fam-404")) {
            try await store.transaction { tx in
                try await tx.insertRefreshToken(
                    RefreshTokenRecord(tokenHash: "cd", familyID: "fam-404", issuedAt: Fixture.t0, expiresAt: Fixture.t0)
                )
            }
        }
    }

    func testDuplicateRefreshTokenHashThrowsDuplicate() async throws {
        let store = try await self.openStore()
        let (user, org) = try await Fixture.seedUserAndOrganization(store)
        let hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        let token = RefreshTokenRecord(tokenHash: hash, familyID: "fam-1", issuedAt: Fixture.t0, expiresAt: Fixture.t0)
        try await store.transaction { tx in
            try await tx.insertRefreshFamily(Fixture.family("fam-1", user: user, org: org))
            try await tx.insertRefreshToken(token)
        }
        await self.assertThrows(.duplicate("refresh token 0123456789ab…")) {
            try await store.transaction { tx in try await tx.insertRefreshToken(token) }
        }
    }

    // MARK: Server secrets

    func testServerSecretInsertIfAbsentReturnsTheFirstValue() async throws {
        let store = try await self.openStore()
        let absent = try await store.transaction { tx in try await tx.serverSecret(named: "grace-hmac") }
        XCTAssertNil(absent)
        let first: [UInt8] = [0, 1, 2, 255, 0, 42]
        let second: [UInt8] = Array(repeating: 7, count: 32)
        let returnedFirst = try await store.transaction { tx in
            try await tx.insertServerSecretIfAbsent(named: "grace-hmac", value: first)
        }
        XCTAssertEqual(returnedFirst, first)
        let returnedSecond = try await store.transaction { tx in
            try await tx.insertServerSecretIfAbsent(named: "grace-hmac", value: second)
        }
        XCTAssertEqual(returnedSecond, first)
        let stored = try await store.transaction { tx in try await tx.serverSecret(named: "grace-hmac") }
        XCTAssertEqual(stored, first)
        let other = try await store.transaction { tx in
            try await tx.insertServerSecretIfAbsent(named: "other", value: [])
        }
        XCTAssertEqual(other, [])
    }

    // MARK: Transactions

    private struct Abort: Error {}

    func testAThrownErrorRollsBackEveryWriteOfTheTransaction() async throws {
        let store = try await self.openStore()
        let (user, org) = try await Fixture.seedUserAndOrganization(store)
        do {
            try await store.transaction { tx in
                _ = try await tx.insertUser(Fixture.newUser("bob"))
                _ = try await tx.insertOrganization(name: "chemistry", clusterName: "chem", createdAt: Fixture.t0)
                try await tx.upsertMembership(
                    Membership(organizationID: org, userID: user, role: .admin, isActive: true, createdAt: Fixture.t0)
                )
                try await tx.updatePasswordHash(userID: user, to: nil)
                try await tx.insertRefreshFamily(Fixture.family("fam-1", user: user, org: org))
                _ = try await tx.insertServerSecretIfAbsent(named: "s", value: [1])
                throw Abort()
            }
            XCTFail("the transaction did not rethrow")
        } catch is Abort {}

        try await store.transaction { tx in
            let users = try await tx.users()
            XCTAssertEqual(users.map(\.username), ["alice"])
            XCTAssertNotNil(users.first?.passwordHash)
            let organizations = try await tx.organizations()
            XCTAssertEqual(organizations.map(\.name), ["physics"])
            let membership = try await tx.membership(organizationID: org, userID: user)
            XCTAssertNil(membership)
            let family = try await tx.refreshFamily(id: "fam-1")
            XCTAssertNil(family)
            let secret = try await tx.serverSecret(named: "s")
            XCTAssertNil(secret)
        }
    }

    func testAFailedStatementCanBeCaughtAndTheTransactionGoesOn() async throws {
        let store = try await self.openStore()
        try await store.transaction { tx in
            _ = try await tx.insertUser(Fixture.newUser("alice"))
            do {
                _ = try await tx.insertUser(Fixture.newUser("alice"))
                XCTFail("duplicate accepted")
            } catch StoreError.duplicate {}
            _ = try await tx.insertUser(Fixture.newUser("bob"))
        }
        let names = try await store.transaction { tx in try await tx.users().map(\.username) }
        XCTAssertEqual(names, ["alice", "bob"])
    }

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
                        _ = try await tx.insertUser(Fixture.newUser("user-\(seen)"))
                    }
                }
            }
            try await group.waitForAll()
        }
        XCTAssertEqual(overlap.maximum, 1)
        let names = try await store.transaction { tx in try await tx.users().map(\.username) }
        XCTAssertEqual(Set(names), Set((0..<count).map { "user-\($0)" }))
    }

    /// Two stores on one file stand for the server and a CLI in two processes: `BEGIN IMMEDIATE`
    /// and the busy timeout serialize them without lost updates.
    func testTwoStoresOnOneFileSerializeTheirTransactions() async throws {
        let first = try await self.openStore()
        let second = try await self.openStore()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<40 {
                let store = index.isMultiple(of: 2) ? first : second
                group.addTask {
                    try await store.transaction { tx in
                        let seen = try await tx.users().count
                        await Task.yield()
                        _ = try await tx.insertUser(Fixture.newUser("user-\(seen)"))
                    }
                }
            }
            try await group.waitForAll()
        }
        let count = try await first.transaction { tx in try await tx.users().count }
        XCTAssertEqual(count, 40)
    }

    func testTheTransactionObjectRefusesUseAfterItsTransactionEnded() async throws {
        let store = try await self.openStore()
        let escaped = try await store.transaction { tx in tx }
        await self.assertThrows(.engine("transaction is closed")) {
            _ = try await escaped.users()
        }
        await self.assertThrows(.engine("transaction is closed")) {
            _ = try await escaped.insertUser(Fixture.newUser("late"))
        }
        do {
            try await store.transaction { tx -> Void in
                _ = try await tx.insertUser(Fixture.newUser("x"))
                throw Abort()
            }
        } catch is Abort {}
        let rolledBack = try await store.transaction { tx in try await tx.users() }
        XCTAssertEqual(rolledBack, [])
        await self.assertThrows(.engine("transaction is closed")) {
            _ = try await escaped.user(named: "x")
        }
    }

    func testANestedTransactionThrowsInsteadOfDeadlocking() async throws {
        // Not closed in tearDown: if nesting deadlocked, closing would wait for it forever.
        let store = try await SQLiteStore.open(path: self.databasePath, logger: Fixture.logger)
        let attempt = Task {
            try await store.transaction { _ in
                try await store.transaction { _ in }
            }
        }
        guard let outcome = await attempt.result(within: .seconds(10)) else {
            return XCTFail("a nested transaction deadlocked")
        }
        XCTAssertThrowsError(try outcome.get()) { error in
            XCTAssertEqual(
                error as? StoreError,
                .engine("nested transaction: this task is already inside a transaction of this store")
            )
        }
        // The store is still usable.
        let users = try await store.transaction { tx in try await tx.users() }
        XCTAssertEqual(users, [])
        try await store.close()
    }

    func testClosingFromInsideATransactionThrowsInsteadOfDeadlocking() async throws {
        // Not closed in tearDown: if this deadlocked, closing would wait for it forever.
        let store = try await SQLiteStore.open(path: self.databasePath, logger: Fixture.logger)
        let attempt = Task {
            try await store.transaction { _ in try await store.close() }
        }
        guard let outcome = await attempt.result(within: .seconds(10)) else {
            return XCTFail("closing from inside a transaction deadlocked")
        }
        XCTAssertThrowsError(try outcome.get()) { error in
            XCTAssertEqual(error as? StoreError, .engine("cannot close the store from inside one of its transactions"))
        }
        let users = try await store.transaction { tx in try await tx.users() }
        XCTAssertEqual(users, [])
        try await store.close()
    }

    func testACancelledTransactionRollsBackAndReleasesTheStore() async throws {
        let store = try await self.openStore()
        let started = Signal()
        let task = Task {
            try await store.transaction { tx in
                _ = try await tx.insertUser(Fixture.newUser("doomed"))
                started.fire()
                // Sleep until cancelled (throws CancellationError), then try to write once more.
                try? await Task.sleep(for: .seconds(30))
                _ = try await tx.insertUser(Fixture.newUser("doomed-too"))
            }
        }
        await started.wait()
        task.cancel()
        do {
            try await task.value
            XCTFail("the cancelled transaction committed")
        } catch is CancellationError {}

        let names = try await store.transaction { tx in try await tx.users().map(\.username) }
        XCTAssertEqual(names, [])
    }

    func testATaskCancelledWhileWaitingForTheStoreDoesNotRun() async throws {
        let store = try await self.openStore()
        let holding = Signal()
        let release = Signal()
        let holder = Task {
            try await store.transaction { tx in
                _ = try await tx.insertUser(Fixture.newUser("holder"))
                holding.fire()
                await release.wait()
            }
        }
        await holding.wait()
        let waiter = Task {
            try await store.transaction { tx in _ = try await tx.insertUser(Fixture.newUser("waiter")) }
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
        _ = try await store.transaction { tx in try await tx.insertUser(Fixture.newUser("alice")) }
        try await store.discardConnectionForTesting()
        let names = try await store.transaction { tx in try await tx.users().map(\.username) }
        XCTAssertEqual(names, ["alice"])
    }

    func testAClosedStoreRefusesTransactions() async throws {
        let store = try await SQLiteStore.open(path: self.databasePath, logger: Fixture.logger)
        try await store.close()
        await self.assertThrows(.engine("store is closed")) {
            _ = try await store.transaction { tx in try await tx.users() }
        }
        try await store.close()  // closing twice is harmless
    }

    // MARK: Files and migrations

    func testDataPersistsAcrossReopeningAndMigrationsAreNotReapplied() async throws {
        let path = self.databasePath
        let first = try await SQLiteStore.open(path: path, logger: Fixture.logger)
        let precise = Fixture.date(1_700_000_000.123)
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
        let old = try await SQLiteStore.open(path: path, logger: Fixture.logger, migrations: Array(Schema.migrations.prefix(3)))
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
                        id: id, userID: 7, scope: scope, authenticatedAt: Fixture.t0,
                        expiresAt: Fixture.t0.addingTimeInterval(60), authenticationMethods: ["github_pat"],
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

    func testTheDatabaseFileIsCreatedWithMode0600() async throws {
        let store = try await self.openStore()
        _ = try await store.transaction { tx in try await tx.insertUser(Fixture.newUser("alice")) }
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
        XCTAssertEqual(settings, ["wal", "2", "1", "5000"])  // synchronous 2 = FULL
    }

    func testADatabaseWithANewerSchemaRefusesToOpen() async throws {
        let path = self.databasePath
        let future = Schema.migrations + [
            Migration(version: SQLiteStore.latestSchemaVersion + 1, statements: ["CREATE TABLE from_the_future (x INTEGER) STRICT"]),
        ]
        let newer = try await SQLiteStore.open(path: path, logger: Fixture.logger, migrations: future)
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
        let store = try await SQLiteStore.openInMemory(logger: Fixture.logger)
        self.openStores.append(store)
        let alice = try await store.transaction { tx in try await tx.insertUser(Fixture.newUser("alice")) }
        let found = try await store.transaction { tx in try await tx.user(id: alice.id) }
        XCTAssertEqual(found, alice)
    }
}

/// Values shared by the tests.
private enum Fixture {
    static let logger: Logger = {
        var logger = Logger(label: "SQLiteStoreTests")
        logger.logLevel = .warning
        return logger
    }()

    /// A date; whole seconds round-trip exactly, fractions to well under a millisecond.
    static func date(_ secondsSince1970: Double) -> Date {
        Date(timeIntervalSince1970: secondsSince1970)
    }

    static let t0 = date(1_700_000_000)

    static func newUser(_ name: String, hash: String? = "$argon2id$v=19$fake") -> NewUser {
        NewUser(username: name, passwordHash: hash, isActive: true, createdAt: t0)
    }

    /// Creates alice and the org "physics"; returns their ids.
    static func seedUserAndOrganization(_ store: SQLiteStore) async throws -> (user: Int64, org: Int64) {
        try await store.transaction { tx in
            let user = try await tx.insertUser(newUser("alice"))
            let org = try await tx.insertOrganization(name: "physics", clusterName: "physics-cluster", createdAt: t0)
            return (user.id, org.id)
        }
    }

    static func family(_ id: String, user: Int64, org: Int64) -> RefreshFamily {
        RefreshFamily(
            id: id, userID: user, organizationID: org, authenticatedAt: t0,
            expiresAt: t0.addingTimeInterval(86_400), authenticationMethods: ["pwd", "otp"], accountVersions: .initial
        )
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
private final class Signal: @unchecked Sendable {
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
    // MARK: Read-only snapshots

    func testReadSnapshotsSeeCommittedDataAndRefuseWrites() async throws {
        let store = try await self.openStore()
        try await store.transaction { tx in
            _ = try await tx.insertOrganization(name: "org1", clusterName: "c1", createdAt: Date(timeIntervalSince1970: 1))
            _ = try await tx.insertOrganization(name: "org2", clusterName: "c2", createdAt: Date(timeIntervalSince1970: 1))
        }
        let names = try await store.read { tx in try await tx.organizations(named: ["org2", "nope", "org1"]).map { $0.name } }
        XCTAssertEqual(names, ["org1", "org2"])
        do {
            try await store.read { tx in
                _ = try await tx.insertOrganization(name: "org3", clusterName: "c3", createdAt: Date())
            }
            XCTFail("a write inside a read snapshot succeeded")
        } catch {}
        let count = try await store.transaction { tx in try await tx.organizations().count }
        XCTAssertEqual(count, 2)
    }

    func testReadsDoNotWaitForAWriterThatHoldsItsTransaction() async throws {
        let store = try await self.openStore()
        let (entered, enteredContinuation) = AsyncStream<Void>.makeStream()
        let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
        let writer = Task {
            try await store.transaction { tx in
                _ = try await tx.insertOrganization(name: "pending", clusterName: "p", createdAt: Date())
                enteredContinuation.yield()
                for await _ in release { break }
            }
        }
        for await _ in entered { break }
        // The writer holds its transaction open: a snapshot still answers, without its write.
        let seen = try await store.read { tx in try await tx.organization(named: "pending") }
        XCTAssertNil(seen)
        releaseContinuation.yield()
        try await writer.value
        let after = try await store.read { tx in try await tx.organization(named: "pending") }
        XCTAssertNotNil(after)
    }

    func testAccountSnapshotIsOneConsistentReadOfAccountMembershipsAndOrganizations() async throws {
        let store = try await self.openStore()
        let day = Date(timeIntervalSince1970: 86_400)
        let (user, org1, org2) = try await store.transaction { tx in
            let user = try await tx.insertUser(NewUser(username: "carol", passwordHash: nil, createdAt: day, githubLogin: "Carol-GH"))
            _ = try await tx.insertUser(NewUser(username: "other", passwordHash: nil, createdAt: day))
            let org1 = try await tx.insertOrganization(name: "org1", clusterName: "c1", createdAt: day)
            let org2 = try await tx.insertOrganization(name: "org2", clusterName: "c2", createdAt: day)
            _ = try await tx.insertOrganization(name: "org3", clusterName: "c3", createdAt: day)
            try await tx.upsertMembership(Membership(organizationID: org2.id, userID: user.id, role: .owner, isActive: true, createdAt: day))
            try await tx.upsertMembership(Membership(organizationID: org1.id, userID: user.id, role: .member, isActive: false, createdAt: day))
            return (user, org1, org2)
        }
        let snapshot = try await store.accountSnapshot(githubID: 77, login: "carol-gh", organizations: ["org3", "missing", "org1"])
        XCTAssertEqual(snapshot.user, user)
        XCTAssertEqual(snapshot.memberships.map(\.organization), [org1, org2])
        XCTAssertEqual(snapshot.memberships.map(\.membership.role), [.member, .owner])
        XCTAssertEqual(snapshot.memberships.map(\.membership.isActive), [false, true])
        XCTAssertEqual(snapshot.organizations.map(\.name), ["org1", "org3"])
        // The same answer as the composed reads.
        let composed = try await store.read { tx in
            AccountSnapshot(
                user: try await tx.user(githubLogin: "carol-gh"), memberships: try await tx.memberships(userID: user.id),
                organizations: try await tx.organizations(named: ["org3", "missing", "org1"]))
        }
        XCTAssertEqual(snapshot, composed)
        let nobody = try await store.accountSnapshot(githubID: 78, login: "nobody", organizations: [])
        XCTAssertEqual(nobody, AccountSnapshot(user: nil, memberships: [], organizations: []))
    }

    func testTheAccountOfAGitHubIDWinsOverTheAccountOfItsLogin() async throws {
        let store = try await self.openStore()
        let day = Date(timeIntervalSince1970: 86_400)
        let (renamed, stale) = try await store.transaction { tx in
            let renamed = try await tx.insertUser(
                NewUser(username: "carol", passwordHash: nil, createdAt: day, githubLogin: "carol-old", githubID: 7))
            let stale = try await tx.insertUser(
                NewUser(username: "dave", passwordHash: nil, createdAt: day, githubLogin: "Carol-New", githubID: 8))
            return (renamed, stale)
        }
        var snapshot = try await store.accountSnapshot(githubID: 7, login: "carol-new", organizations: [])
        XCTAssertEqual(snapshot.user, renamed, "by id, though another account still holds the login")
        snapshot = try await store.accountSnapshot(githubID: 9, login: "carol-new", organizations: [])
        XCTAssertEqual(snapshot.user, stale, "by login when no account has the id: the caller compares the ids")
        let byID = try await store.read { tx in try await tx.user(githubID: 8) }
        XCTAssertEqual(byID, stale)
        await self.assertThrows(.duplicate("GitHub user id 7")) {
            try await store.transaction { tx in try await tx.setGitHubLink(userID: stale.id, login: "dave-gh", id: 7) }
        }
        await self.assertThrows(.duplicate("GitHub login carol-old")) {
            try await store.transaction { tx in try await tx.setGitHubLink(userID: stale.id, login: "carol-old", id: 8) }
        }
        await self.assertThrows(.duplicate("GitHub user id 8")) {
            _ = try await store.transaction { tx in
                try await tx.insertUser(NewUser(username: "erin", passwordHash: nil, createdAt: day, githubID: 8))
            }
        }
    }

    func testMigrationGivesLoginLinkedRowsANullGitHubIDWithAUniqueIndex() async throws {
        let path = self.databasePath
        // The schema as it was before GitHub user ids, with a row linked by login.
        let before = Array(Schema.migrations.prefix { !$0.statements.joined().contains("github_id") })
        XCTAssertLessThan(before.count, Schema.migrations.count)
        let old = try await SQLiteStore.open(path: path, logger: Fixture.logger, migrations: before)
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
