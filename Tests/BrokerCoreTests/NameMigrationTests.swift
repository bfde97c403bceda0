import BrokerCore
import Foundation
import Logging
import XCTest

@testable import BrokerSQLite

/// The migration that gives existing users and organizations their name keys and skeletons:
/// rows that collide are kept working, flagged and reported, never merged.
final class NameMigrationTests: XCTestCase {
    private var directory: URL!

    override func setUp() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("name-migration-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() async throws {
        try? FileManager.default.removeItem(at: directory)
    }

    static let logger: Logger = {
        var logger = Logger(label: "NameMigrationTests")
        logger.logLevel = .warning
        return logger
    }()

    /// A database as brokers before the name profile left it, holding names that read alike.
    static func seedOldDatabase(at path: String) async throws {
        let before = Array(Schema.migrations.prefix { !$0.statements.joined().contains("username_key") })
        XCTAssertLessThan(before.count, Schema.migrations.count)
        let old = try await SQLiteStore.open(path: path, logger: logger, migrations: before)
        try await old.withExclusiveConnection { connection in
            for (id, name) in [
                (1, "alice"), (2, "Alice"), (3, "\u{0430}lice"), (4, "jos\u{E9}"), (5, "jose\u{301}"), (6, "bob"),
            ] {
                _ = try await connection.rows(
                    "INSERT INTO users (id, username, password_hash, is_active, created_at) VALUES (\(id), '\(name)', NULL, 1, 0)")
            }
            for (id, name) in [(1, "org1"), (2, "ORG1"), (3, "Org1"), (4, "physics")] {
                _ = try await connection.rows(
                    "INSERT INTO organizations (id, name, cluster_name, created_at) VALUES (\(id), '\(name)', '\(name)', 0)")
            }
        }
        try await old.close()
    }

    func testCollisionsAreReportedNotMergedAndTheRowsKeepWorking() async throws {
        let path = directory.appendingPathComponent("broker.sqlite3").path
        try await Self.seedOldDatabase(at: path)
        let store = try await SQLiteStore.open(path: path, logger: Self.logger)

        let collisions = try await store.read { tx in try await tx.nameCollisions() }
        XCTAssertEqual(
            collisions,
            [
                NameCollision(kind: .user, name: "Alice", readsLike: "alice"),
                NameCollision(kind: .user, name: "jose\u{301}", readsLike: "jos\u{E9}"),
                NameCollision(kind: .user, name: "\u{0430}lice", readsLike: "alice"),
                NameCollision(kind: .organization, name: "ORG1", readsLike: "org1"),
                NameCollision(kind: .organization, name: "Org1", readsLike: "org1"),
            ])
        try await store.read { tx in
            let users = try await tx.users()
            XCTAssertEqual(users.map(\.id), [1, 2, 3, 4, 5, 6], "nothing merged, nothing deleted")
            // Each spelling still finds its own row; other spellings find the oldest.
            let alice = try await tx.user(named: "alice")
            XCTAssertEqual(alice?.id, 1)
            let capital = try await tx.user(named: "Alice")
            XCTAssertEqual(capital?.id, 2)
            let shouted = try await tx.user(named: "ALICE")
            XCTAssertEqual(shouted?.id, 1)
            let cyrillic = try await tx.user(named: "\u{0430}lice")
            XCTAssertEqual(cyrillic?.id, 3)
            let decomposed = try await tx.user(named: "jose\u{301}")
            XCTAssertEqual(decomposed?.id, 5)
            let org = try await tx.organization(named: "Org1")
            XCTAssertEqual(org?.id, 3)
            let anyCase = try await tx.organization(named: "oRG1")
            XCTAssertEqual(anyCase?.id, 1)
        }
        // The older name still holds its skeleton: no new look-alike gets in.
        for name in ["ALICE", "a1ice", "aLiCe", "JOSÉ"] {
            do {
                _ = try await store.transaction { tx in
                    try await tx.insertUser(NewUser(username: name, passwordHash: nil, createdAt: Date()))
                }
                XCTFail("\(name) was created beside an older look-alike")
            } catch StoreError.duplicate {}
        }
        do {
            _ = try await store.transaction { tx in
                try await tx.insertOrganization(name: "orgl", clusterName: "orgl", createdAt: Date())
            }
            XCTFail("orgl reads like org1")
        } catch StoreError.duplicate {}
        try await store.close()
    }

    /// Deleting the older of two look-alikes leaves the name to the newer one: no longer
    /// reported, and again guarding the name against new look-alikes.
    func testDeletingTheOlderRowHandsTheNameOver() async throws {
        let path = directory.appendingPathComponent("broker.sqlite3").path
        try await Self.seedOldDatabase(at: path)
        let store = try await SQLiteStore.open(path: path, logger: Self.logger)
        try await store.transaction { tx in
            _ = try await tx.deleteUser(id: 1)  // alice; Alice and аlice remain
            _ = try await tx.deleteOrganization(id: 1)  // org1; ORG1 and Org1 remain
        }
        let collisions = try await store.read { tx in try await tx.nameCollisions() }
        XCTAssertEqual(
            collisions,
            [
                NameCollision(kind: .user, name: "jose\u{301}", readsLike: "jos\u{E9}"),
                NameCollision(kind: .user, name: "\u{0430}lice", readsLike: "Alice"),
                NameCollision(kind: .organization, name: "Org1", readsLike: "ORG1"),
            ])
        do {
            _ = try await store.transaction { tx in
                try await tx.insertUser(NewUser(username: "alice", passwordHash: nil, createdAt: Date()))
            }
            XCTFail("alice was created beside Alice")
        } catch StoreError.duplicate {}
        try await store.close()
    }
}
