import BrokerCore
import Foundation
import Logging
import XCTest

@testable import BrokerPostgres
@testable import BrokerSQLite

/// What every ``Store`` must do, whatever its engine: one copy of each test, each run on SQLite
/// (a database file in a temporary directory) and on PostgreSQL (a fresh database on the server
/// named by `BROKER_TEST_POSTGRES_URL`; without it only SQLite runs, and
/// ``testPostgreSQLIsConfigured`` is skipped saying how to run them). Engine-specific behaviour
/// (files, pragmas, migrations of old SQLite files, retries across PostgreSQL replicas) is tested
/// in `SQLiteStoreTests` and `PostgresStoreTests`.
///
/// (One class running each body per engine rather than a subclass per engine: XCTest on Linux
/// does not discover inherited test methods.)
final class StoreConformanceTests: XCTestCase {
    enum Engine: String, CaseIterable, Sendable {
        case sqlite = "SQLite"
        case postgresql = "PostgreSQL"
    }

    /// A failure of a test body, with the engine it ran on.
    struct OnEngine: Error, CustomStringConvertible {
        var engine: Engine
        var error: any Error
        var description: String { "on \(engine.rawValue): \(error)" }
    }

    private var engine: Engine = .sqlite
    private var openStores: [any Store] = []
    private var directory: URL?
    private var database: PostgresTestDatabase?

    static var postgresIsConfigured: Bool {
        !(ProcessInfo.processInfo.environment[PostgresTestDatabase.variable] ?? "").isEmpty
    }

    func testPostgreSQLIsConfigured() throws {
        guard Self.postgresIsConfigured else { throw XCTSkip("the store tests ran on SQLite only. " + PostgresTestDatabase.howToRun) }
    }

    /// Runs `body` once on each engine, each time on a new, empty database.
    func onEveryEngine(file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> Void) async throws {
        for engine in Engine.allCases where engine == .sqlite || Self.postgresIsConfigured {
            self.engine = engine
            let failuresBefore = self.testRun?.totalFailureCount ?? 0
            do {
                try await body()
            } catch {
                try? await self.closeEngine()
                throw OnEngine(engine: engine, error: error)
            }
            try await self.closeEngine()
            if (self.testRun?.totalFailureCount ?? 0) > failuresBefore {
                XCTFail("the failures above are on \(engine.rawValue)", file: file, line: line)
            }
        }
    }

    /// A new store on the current engine's database; every call within one run opens the same
    /// database (two stores on one database stand for two processes).
    private func openEngineStore() async throws -> any Store {
        switch self.engine {
        case .sqlite:
            if self.directory == nil {
                let directory = FileManager.default.temporaryDirectory
                    .appendingPathComponent("store-conformance-\(UUID().uuidString)", isDirectory: true)
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                self.directory = directory
            }
            return try await SQLiteStore.open(
                path: self.directory!.appendingPathComponent("broker.sqlite3").path, logger: StoreFixture.logger)
        case .postgresql:
            if self.database == nil { self.database = try await PostgresTestDatabase.create() }
            return try await PostgresStore.open(self.database!.settings(), logger: StoreFixture.logger)
        }
    }

    /// Closes the stores of the current run and removes its database.
    private func closeEngine() async throws {
        let stores = self.openStores
        self.openStores = []
        for store in stores { try await store.close() }
        if let directory { try? FileManager.default.removeItem(at: directory) }
        self.directory = nil
        try await self.database?.drop()
        self.database = nil
    }

    /// A store closed at the end of the run.
    func makeStore() async throws -> any Store {
        let store = try await self.openEngineStore()
        self.openStores.append(store)
        return store
    }

    /// A store the test closes itself (one that may be left deadlocked must not be waited for).
    func makeUnmanagedStore() async throws -> any Store {
        try await self.openEngineStore()
    }

    override func tearDown() async throws {
        try await self.closeEngine()
        try await super.tearDown()
    }

    struct Abort: Error {}

    func testUserCRUD() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let created = try await store.transaction { tx in
                let alice = try await tx.insertUser(StoreFixture.newUser("alice"))
                let bob = try await tx.insertUser(
                    NewUser(username: "bob", passwordHash: nil, isActive: false, createdAt: StoreFixture.date(1_700_000_123.456))
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
    }

    func testUpdatingAnAbsentUserThrowsNotFound() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            await self.assertThrows(.notFound("user 42")) {
                try await store.transaction { tx in try await tx.updatePasswordHash(userID: 42, to: "x") }
            }
            await self.assertThrows(.notFound("user 42")) {
                try await store.transaction { tx in try await tx.setUserActive(userID: 42, true) }
            }
        }
    }

    func testDuplicateUsernameThrowsDuplicateWithoutTheHash() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            _ = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("alice")) }
            do {
                _ = try await store.transaction { tx in
                    try await tx.insertUser(StoreFixture.newUser("alice", hash: "$argon2id$v=19$SECRET-HASH"))
                }
                XCTFail("a second alice was inserted")
            } catch let error as StoreError {
                XCTAssertEqual(error, .duplicate("user alice"))
                XCTAssertFalse("\(error)".contains("SECRET-HASH"))
            }
        }
    }

    /// Names are compared by their key (``AccountName``), not byte for byte: `alice` is `Alice`.
    func testUsernamesAreComparedAsAPersonReadsThem() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let upper = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("Alice")) }
            await self.assertThrows(.duplicate("user alice")) {
                _ = try await store.transaction { tx in try await tx.insertUser(StoreFixture.newUser("alice")) }
            }
            try await store.transaction { tx in
                for spelling in ["Alice", "alice", "ALICE"] {
                    let found = try await tx.user(named: spelling)
                    XCTAssertEqual(found?.id, upper.id, spelling)
                    XCTAssertEqual(found?.username, "Alice", "stored as first spelled")
                }
            }
        }
    }

    func testOrganizationCRUDOrderedByName() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let created = try await store.transaction { tx in
                let zoo = try await tx.insertOrganization(name: "zoology", clusterName: "zoo", createdAt: StoreFixture.t0)
                let bio = try await tx.insertOrganization(name: "biology", clusterName: "bio", createdAt: StoreFixture.t0)
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
    }

    func testDuplicateOrganizationNameOrClusterName() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            _ = try await store.transaction { tx in
                try await tx.insertOrganization(name: "physics", clusterName: "phys", createdAt: StoreFixture.t0)
            }
            await self.assertThrows(.duplicate("organization physics")) {
                _ = try await store.transaction { tx in
                    try await tx.insertOrganization(name: "physics", clusterName: "other", createdAt: StoreFixture.t0)
                }
            }
            await self.assertThrows(.duplicate("organization cluster name phys")) {
                _ = try await store.transaction { tx in
                    try await tx.insertOrganization(name: "chemistry", clusterName: "phys", createdAt: StoreFixture.t0)
                }
            }
            let count = try await store.transaction { tx in try await tx.organizations().count }
            XCTAssertEqual(count, 1)
        }
    }

    func testUpsertMembershipReplacesRole() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            try await store.transaction { tx in
                try await tx.upsertMembership(
                    Membership(organizationID: org, userID: user, role: .member, isActive: true, createdAt: StoreFixture.t0)
                )
            }
            let later = StoreFixture.t0.addingTimeInterval(60)
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
    }

    func testMembershipOfAMissingUserOrOrganizationThrowsNotFound() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            await self.assertThrows(.notFound("user 999")) {
                try await store.transaction { tx in
                    try await tx.upsertMembership(
                        Membership(organizationID: org, userID: 999, role: .member, isActive: true, createdAt: StoreFixture.t0)
                    )
                }
            }
            await self.assertThrows(.notFound("organization 999")) {
                try await store.transaction { tx in
                    try await tx.upsertMembership(
                        Membership(organizationID: 999, userID: user, role: .member, isActive: true, createdAt: StoreFixture.t0)
                    )
                }
            }
        }
    }

    func testMembersOrderedByUsername() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let org = try await store.transaction { tx in
                let org = try await tx.insertOrganization(name: "physics", clusterName: "physics", createdAt: StoreFixture.t0)
                let other = try await tx.insertOrganization(name: "other", clusterName: "other", createdAt: StoreFixture.t0)
                // Inserted out of order; "Zed" sorts before "alice" in binary collation.
                for (name, role) in [("mallory", Role.member), ("alice", .owner), ("Zed", .admin), ("bob", .member)] {
                    let user = try await tx.insertUser(StoreFixture.newUser(name))
                    try await tx.upsertMembership(
                        Membership(organizationID: org.id, userID: user.id, role: role, isActive: true, createdAt: StoreFixture.t0)
                    )
                }
                let outsider = try await tx.insertUser(StoreFixture.newUser("outsider"))
                try await tx.upsertMembership(
                    Membership(organizationID: other.id, userID: outsider.id, role: .member, isActive: true, createdAt: StoreFixture.t0)
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
    }

    func testDeleteMembership() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            try await store.transaction { tx in
                try await tx.upsertMembership(
                    Membership(organizationID: org, userID: user, role: .owner, isActive: true, createdAt: StoreFixture.t0)
                )
            }
            let first = try await store.transaction { tx in try await tx.deleteMembership(organizationID: org, userID: user) }
            XCTAssertTrue(first)
            let second = try await store.transaction { tx in try await tx.deleteMembership(organizationID: org, userID: user) }
            XCTAssertFalse(second)
            let gone = try await store.transaction { tx in try await tx.membership(organizationID: org, userID: user) }
            XCTAssertNil(gone)
        }
    }

    func testRefreshFamilyInsertAndRevokeKeepsTheFirstReason() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            let family = StoreFixture.family("fam-1", user: user, org: org)
            try await store.transaction { tx in try await tx.insertRefreshFamily(family) }

            let stored = try await store.transaction { tx in try await tx.refreshFamily(id: "fam-1") }
            XCTAssertEqual(stored, family)
            XCTAssertEqual(stored?.authenticationMethods, ["pwd", "otp"])
            let missing = try await store.transaction { tx in try await tx.refreshFamily(id: "nope") }
            XCTAssertNil(missing)

            let firstRevocation = StoreFixture.t0.addingTimeInterval(100)
            try await store.transaction { tx in
                try await tx.revokeRefreshFamily(id: "fam-1", at: firstRevocation, reason: "reuse detected")
            }
            try await store.transaction { tx in
                try await tx.revokeRefreshFamily(id: "fam-1", at: StoreFixture.t0.addingTimeInterval(200), reason: "logout")
            }
            let revoked = try await store.transaction { tx in try await tx.refreshFamily(id: "fam-1") }
            XCTAssertEqual(revoked?.revokedAt, firstRevocation)
            XCTAssertEqual(revoked?.revocationReason, "reuse detected")

            await self.assertThrows(.notFound("refresh family nope")) {
                try await store.transaction { tx in try await tx.revokeRefreshFamily(id: "nope", at: StoreFixture.t0, reason: "x") }
            }
            await self.assertThrows(.duplicate("refresh family fam-1")) {
                try await store.transaction { tx in try await tx.insertRefreshFamily(family) }
            }
            await self.assertThrows(.notFound("user 77")) {
                try await store.transaction { tx in try await tx.insertRefreshFamily(StoreFixture.family("fam-2", user: 77, org: org)) }
            }
        }
    }

    /// What a renewal reads in one piece: the token with its session, account, organization and
    /// membership; nothing for an unknown token; no organization or membership where there is
    /// none.
    func testARenewalReadsTheTokenWithItsSessionAccountOrganizationAndMembership() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (userID, orgID) = try await StoreFixture.seedUserAndOrganization(store)
            let membership = Membership(organizationID: orgID, userID: userID, role: .owner, isActive: false, createdAt: StoreFixture.t0)
            let inOrganization = RefreshTokenRecord(
                tokenHash: "aa", familyID: "fam-org", issuedAt: StoreFixture.t0, expiresAt: StoreFixture.t0.addingTimeInterval(60),
                usedAt: StoreFixture.t0.addingTimeInterval(30))
            let brokerSession = RefreshFamily(
                id: "fam-broker", userID: userID, scope: .broker, authenticatedAt: StoreFixture.t0,
                expiresAt: StoreFixture.t0.addingTimeInterval(600), authenticationMethods: ["github"], accountVersions: .initial,
                revokedAt: StoreFixture.t0.addingTimeInterval(9), revocationReason: "logout")
            let outsideOrganization = RefreshTokenRecord(
                tokenHash: "bb", familyID: "fam-broker", issuedAt: StoreFixture.t0, expiresAt: StoreFixture.t0.addingTimeInterval(60))
            try await store.transaction { tx in
                try await tx.upsertMembership(membership)
                try await tx.insertRefreshFamily(StoreFixture.family("fam-org", user: userID, org: orgID))
                try await tx.insertRefreshFamily(brokerSession)
                try await tx.insertRefreshToken(inOrganization)
                try await tx.insertRefreshToken(outsideOrganization)
            }
            let (user, organization) = try await store.read { tx in
                (try await tx.user(id: userID)!, try await tx.organization(id: orgID)!)
            }
            let renewal = try await store.lockingTransaction { tx in try await tx.renewal(ofTokenHash: "aa") }
            XCTAssertEqual(
                renewal,
                RenewalSnapshot(
                    token: inOrganization, family: StoreFixture.family("fam-org", user: userID, org: orgID), user: user,
                    organization: organization, membership: membership))
            XCTAssertEqual(renewal?.session, AuditedSession(username: "alice", organization: "physics", sessionID: "fam-org"))

            let outside = try await store.lockingTransaction { tx in try await tx.renewal(ofTokenHash: "bb") }
            XCTAssertEqual(
                outside,
                RenewalSnapshot(token: outsideOrganization, family: brokerSession, user: user, organization: nil, membership: nil))
            let unknown = try await store.lockingTransaction { tx in try await tx.renewal(ofTokenHash: "cc") }
            XCTAssertNil(unknown)
        }
    }

    func testRefreshTokenInsertLookupAndMarkUsed() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            let hash = String(repeating: "ab", count: 32)
            let token = RefreshTokenRecord(
                tokenHash: hash, familyID: "fam-1", issuedAt: StoreFixture.t0, expiresAt: StoreFixture.t0.addingTimeInterval(3_600)
            )
            try await store.transaction { tx in
                try await tx.insertRefreshFamily(StoreFixture.family("fam-1", user: user, org: org))
                try await tx.insertRefreshToken(token)
            }
            let stored = try await store.transaction { tx in try await tx.refreshToken(hash: hash) }
            XCTAssertEqual(stored, token)
            XCTAssertNil(stored?.usedAt)
            let missing = try await store.transaction { tx in try await tx.refreshToken(hash: "00") }
            XCTAssertNil(missing)

            let usedAt = StoreFixture.date(1_700_000_010.25)
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
                        RefreshTokenRecord(tokenHash: "cd", familyID: "fam-404", issuedAt: StoreFixture.t0, expiresAt: StoreFixture.t0)
                    )
                }
            }
        }
    }

    /// A renewal's write (the used token marked, its successor inserted) is one operation: the
    /// first use is kept, and when either half cannot be done nothing is written.
    func testRenewalWriteMarksTheUsedTokenAndInsertsItsSuccessorOrNothing() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            @Sendable func token(_ hash: String, family: String = "fam-1", usedAt: Date? = nil) -> RefreshTokenRecord {
                RefreshTokenRecord(
                    tokenHash: hash, familyID: family, issuedAt: StoreFixture.t0,
                    expiresAt: StoreFixture.t0.addingTimeInterval(3_600), usedAt: usedAt)
            }
            try await store.transaction { tx in
                try await tx.insertRefreshFamily(StoreFixture.family("fam-1", user: user, org: org))
                try await tx.insertRefreshToken(token("a0"))
            }
            let usedAt = StoreFixture.date(1_700_000_010.25)
            try await store.lockingTransaction { tx in
                try await tx.markRefreshTokenUsed(hash: "a0", at: usedAt, insertingSuccessor: token("a1"))
            }
            let (used, successor) = try await store.transaction { tx in
                (try await tx.refreshToken(hash: "a0"), try await tx.refreshToken(hash: "a1"))
            }
            XCTAssertEqual(used!.usedAt!.timeIntervalSince1970, usedAt.timeIntervalSince1970, accuracy: 0.001)
            XCTAssertEqual(successor, token("a1"))
            // A second write from the same token keeps its first use.
            try await store.lockingTransaction { tx in
                try await tx.markRefreshTokenUsed(hash: "a0", at: usedAt.addingTimeInterval(30), insertingSuccessor: token("a2"))
            }
            let usedAgain = try await store.transaction { tx in try await tx.refreshToken(hash: "a0") }
            XCTAssertEqual(usedAgain!.usedAt!.timeIntervalSince1970, usedAt.timeIntervalSince1970, accuracy: 0.001)

            await self.assertThrows(.notFound("refresh token 000000000000…")) {
                try await store.lockingTransaction { tx in
                    try await tx.markRefreshTokenUsed(
                        hash: String(repeating: "0", count: 64), at: usedAt, insertingSuccessor: token("b1"))
                }
            }
            await self.assertThrows(.duplicate("refresh token a2…")) {
                try await store.lockingTransaction { tx in
                    try await tx.markRefreshTokenUsed(hash: "a1", at: usedAt, insertingSuccessor: token("a2"))
                }
            }
            await self.assertThrows(.notFound("refresh family fam-404")) {
                try await store.lockingTransaction { tx in
                    try await tx.markRefreshTokenUsed(hash: "a1", at: usedAt, insertingSuccessor: token("c1", family: "fam-404"))
                }
            }
            // None of the refused writes left anything: a1 is still unused, b1 and c1 do not exist.
            let (a1, b1, c1) = try await store.transaction { tx in
                (try await tx.refreshToken(hash: "a1"), try await tx.refreshToken(hash: "b1"), try await tx.refreshToken(hash: "c1"))
            }
            XCTAssertNil(a1?.usedAt)
            XCTAssertNotNil(a1)
            XCTAssertNil(b1)
            XCTAssertNil(c1)
        }
    }

    /// The renewal read counts the session's renewals within a window: the first use of its
    /// `limit`-th most recent one, none while there were fewer, and never another session's or
    /// one before the window.
    func testRenewalReadCountsTheSessionsRenewalsWithinTheWindow() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            let t0 = StoreFixture.t0
            try await store.transaction { tx in
                for family in ["fam-1", "fam-2"] {
                    try await tx.insertRefreshFamily(StoreFixture.family(family, user: user, org: org))
                }
                // fam-1 renewed at t0+10, +20, +30, +40 (tokens r1…r4 used), presented: r5.
                for index in 1...5 {
                    try await tx.insertRefreshToken(
                        RefreshTokenRecord(
                            tokenHash: "r\(index)", familyID: "fam-1", issuedAt: t0, expiresAt: t0.addingTimeInterval(3_600),
                            usedAt: index < 5 ? t0.addingTimeInterval(Double(index * 10)) : nil))
                }
                // Another session's renewals, later than all of them.
                for index in 1...3 {
                    try await tx.insertRefreshToken(
                        RefreshTokenRecord(
                            tokenHash: "o\(index)", familyID: "fam-2", issuedAt: t0, expiresAt: t0.addingTimeInterval(3_600),
                            usedAt: t0.addingTimeInterval(Double(100 + index))))
                }
            }
            func limiting(after seconds: Double, limit: Int) async throws -> Date? {
                let window = RenewalWindow(after: t0.addingTimeInterval(seconds), limit: limit)
                let renewal = try await store.lockingTransaction { tx in try await tx.renewal(ofTokenHash: "r5", counting: window) }
                XCTAssertEqual(renewal?.token.tokenHash, "r5")
                return renewal?.limitingRenewal
            }
            let counted = [
                try await limiting(after: 0, limit: 1), try await limiting(after: 0, limit: 4),
                try await limiting(after: 0, limit: 5), try await limiting(after: 15, limit: 3),
                try await limiting(after: 15, limit: 2), try await limiting(after: 40, limit: 1),
            ].map { $0.map { Int(($0.timeIntervalSince1970 - t0.timeIntervalSince1970).rounded()) } }
            XCTAssertEqual(counted, [40, 10, nil, 20, 30, nil])
            let uncounted = try await store.lockingTransaction { tx in try await tx.renewal(ofTokenHash: "r5") }
            XCTAssertNotNil(uncounted)
            XCTAssertNil(uncounted?.limitingRenewal)
            let unknown = try await store.lockingTransaction { tx in
                try await tx.renewal(ofTokenHash: "zz", counting: RenewalWindow(after: t0, limit: 1))
            }
            XCTAssertNil(unknown)
        }
    }

    func testDuplicateRefreshTokenHashThrowsDuplicate() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            let hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            let token = RefreshTokenRecord(tokenHash: hash, familyID: "fam-1", issuedAt: StoreFixture.t0, expiresAt: StoreFixture.t0)
            try await store.transaction { tx in
                try await tx.insertRefreshFamily(StoreFixture.family("fam-1", user: user, org: org))
                try await tx.insertRefreshToken(token)
            }
            await self.assertThrows(.duplicate("refresh token 0123456789ab…")) {
                try await store.transaction { tx in try await tx.insertRefreshToken(token) }
            }
        }
    }

    func testServerSecretInsertIfAbsentReturnsTheFirstValue() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
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
    }

    func testAThrownErrorRollsBackEveryWriteOfTheTransaction() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            do {
                try await store.transaction { tx in
                    _ = try await tx.insertUser(StoreFixture.newUser("bob"))
                    _ = try await tx.insertOrganization(name: "chemistry", clusterName: "chem", createdAt: StoreFixture.t0)
                    try await tx.upsertMembership(
                        Membership(organizationID: org, userID: user, role: .admin, isActive: true, createdAt: StoreFixture.t0)
                    )
                    try await tx.updatePasswordHash(userID: user, to: nil)
                    try await tx.insertRefreshFamily(StoreFixture.family("fam-1", user: user, org: org))
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
    }

    func testAFailedStatementCanBeCaughtAndTheTransactionGoesOn() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            try await store.transaction { tx in
                _ = try await tx.insertUser(StoreFixture.newUser("alice"))
                do {
                    _ = try await tx.insertUser(StoreFixture.newUser("alice"))
                    XCTFail("duplicate accepted")
                } catch StoreError.duplicate {}
                _ = try await tx.insertUser(StoreFixture.newUser("bob"))
            }
            let names = try await store.transaction { tx in try await tx.users().map(\.username) }
            XCTAssertEqual(names, ["alice", "bob"])
        }
    }

    /// Two stores on one database stand for the server and a CLI in two processes (or two
    /// replicas): their transactions serialize without lost updates (SQLite: `BEGIN IMMEDIATE`
    /// and the busy timeout; PostgreSQL: SERIALIZABLE and retries).
    func testTwoStoresOnOneDatabaseSerializeTheirTransactions() async throws {
        try await self.onEveryEngine {
            let first = try await self.makeStore()
            let second = try await self.makeStore()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 {
                    let store = index.isMultiple(of: 2) ? first : second
                    group.addTask {
                        try await store.transaction { tx in
                            let seen = try await tx.users().count
                            await Task.yield()
                            _ = try await tx.insertUser(StoreFixture.newUser("user-\(seen)"))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let count = try await first.transaction { tx in try await tx.users().count }
            XCTAssertEqual(count, 40)
        }
    }

    func testTheTransactionObjectRefusesUseAfterItsTransactionEnded() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let escaped = try await store.transaction { tx in tx }
            await self.assertThrows(.engine("transaction is closed")) {
                _ = try await escaped.users()
            }
            await self.assertThrows(.engine("transaction is closed")) {
                _ = try await escaped.insertUser(StoreFixture.newUser("late"))
            }
            do {
                try await store.transaction { tx -> Void in
                    _ = try await tx.insertUser(StoreFixture.newUser("x"))
                    throw Abort()
                }
            } catch is Abort {}
            let rolledBack = try await store.transaction { tx in try await tx.users() }
            XCTAssertEqual(rolledBack, [])
            await self.assertThrows(.engine("transaction is closed")) {
                _ = try await escaped.user(named: "x")
            }
        }
    }

    func testANestedTransactionThrowsInsteadOfDeadlocking() async throws {
        try await self.onEveryEngine {
            // Not closed in tearDown: if nesting deadlocked, closing would wait for it forever.
            let store = try await self.makeUnmanagedStore()
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
    }

    func testClosingFromInsideATransactionThrowsInsteadOfDeadlocking() async throws {
        try await self.onEveryEngine {
            // Not closed in tearDown: if this deadlocked, closing would wait for it forever.
            let store = try await self.makeUnmanagedStore()
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
    }

    func testACancelledTransactionRollsBackAndReleasesTheStore() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let started = Signal()
            let task = Task {
                try await store.transaction { tx in
                    _ = try await tx.insertUser(StoreFixture.newUser("doomed"))
                    started.fire()
                    // Sleep until cancelled (throws CancellationError), then try to write once more.
                    try? await Task.sleep(for: .seconds(30))
                    _ = try await tx.insertUser(StoreFixture.newUser("doomed-too"))
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
    }

    func testAClosedStoreRefusesTransactions() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeUnmanagedStore()
            try await store.close()
            await self.assertThrows(.engine("store is closed")) {
                _ = try await store.transaction { tx in try await tx.users() }
            }
            try await store.close()  // closing twice is harmless
        }
    }

    func testReadSnapshotsSeeCommittedDataAndRefuseWrites() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
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
    }

    func testReadsDoNotWaitForAWriterThatHoldsItsTransaction() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
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
    }

    func testAccountSnapshotIsOneConsistentReadOfAccountMembershipsAndOrganizations() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
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
    }

    func testTheAccountOfAGitHubIDWinsOverTheAccountOfItsLogin() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
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
    }
}

extension XCTestCase {
    /// Fails unless `body` throws exactly `expected` (the store tests of both engines).
    func assertThrows(
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
}

/// Values shared by the store tests.
enum StoreFixture {
    static let logger: Logger = {
        var logger = Logger(label: "StoreTests")
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
    static func seedUserAndOrganization(_ store: any Store) async throws -> (user: Int64, org: Int64) {
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
