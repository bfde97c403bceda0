import BrokerCore
import BrokerSQLite
import Foundation
import Logging
import XCTest

/// `broker maintenance prune`, run as an operator runs it (by hand or from cron) on a real
/// database file.
final class MaintenanceCLITests: XCTestCase {
    func testPruneDeletesWhatExpiredAndKeepsLiveSessions() async throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        var result = try broker.run(["users", "add", "alice", "--no-password"])
        XCTAssertEqual(result.status, 0, result.stderr)

        let databasePath = Self.databasePath(broker)
        try await Self.insertExpiredAndLiveRows(databasePath: databasePath)

        result = try broker.run(["maintenance", "prune"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(
            result.stdout.contains("pruned 1 refresh token(s), 1 session(s), 1 access token revocation(s)"), result.stdout)

        let store = try await SQLiteStore.open(path: databasePath, logger: Logger(label: "test"))
        let (expired, live, used, spent, old, current) = try await store.transaction { tx in
            (
                try await tx.refreshFamily(id: "expired"), try await tx.refreshFamily(id: "live"),
                try await tx.refreshToken(hash: "used"), try await tx.refreshToken(hash: "spent"),
                try await tx.isAccessTokenRevoked(jti: "old"), try await tx.isAccessTokenRevoked(jti: "current")
            )
        }
        try await store.close()
        XCTAssertNil(expired)
        XCTAssertNotNil(live)
        XCTAssertNotNil(used)
        XCTAssertNil(spent)
        XCTAssertFalse(old)
        XCTAssertTrue(current)

        result = try broker.run(["maintenance", "prune"])
        XCTAssertTrue(result.stdout.contains("pruned 0 refresh token(s), 0 session(s), 0 access token revocation(s)"), result.stdout)
    }

    /// `broker serve` prunes on its own every `prune_interval` seconds.
    func testServePrunesEveryPruneInterval() async throws {
        let broker = try BrokerBinary.make(extraConfig: "prune_interval: 1")
        defer { broker.cleanUp() }
        XCTAssertEqual(try broker.run(["users", "add", "alice", "--no-password"]).status, 0)
        let databasePath = Self.databasePath(broker)
        try await Self.insertExpiredAndLiveRows(databasePath: databasePath)
        let (server, _) = try broker.serve()
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        let store = try await SQLiteStore.open(path: databasePath, logger: Logger(label: "test"))
        var remaining: Bool = true
        // Real time: the server's first round comes one second after it starts.
        let deadline = Date().addingTimeInterval(30)
        while remaining, Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
            remaining = try await store.read { tx in try await tx.refreshFamily(id: "expired") != nil }
        }
        let live = try await store.read { tx in try await tx.refreshFamily(id: "live") }
        try await store.close()
        XCTAssertFalse(remaining, "the expired session is still there")
        XCTAssertNotNil(live)
    }

    static func databasePath(_ broker: BrokerBinary) -> String {
        var configuration = BrokerConfiguration()
        configuration.dataDirectory = broker.workDirectory.appendingPathComponent("data").path
        return configuration.databasePath
    }

    /// Sessions `expired` (a day ago, with an unused token) and `live` (with a used token that
    /// expired), revocations `old` (expired) and `current`, for the account alice.
    static func insertExpiredAndLiveRows(databasePath: String) async throws {
        let now = Date()
        let day: TimeInterval = 86_400
        let store = try await SQLiteStore.open(path: databasePath, logger: Logger(label: "test"))
        try await store.transaction { tx in
            let alice = try await tx.user(named: "alice")!
            for (id, expiresAt) in [("expired", now - day), ("live", now + day)] {
                try await tx.insertRefreshFamily(
                    RefreshFamily(
                        id: id, userID: alice.id, scope: .allClusters, authenticatedAt: expiresAt - 7 * day,
                        expiresAt: expiresAt, authenticationMethods: ["pwd"], accountVersions: alice.versions))
            }
            // A used token of the live session: reuse detection needs it although it expired.
            try await tx.insertRefreshToken(
                RefreshTokenRecord(tokenHash: "used", familyID: "live", issuedAt: now - 2 * day, expiresAt: now - day, usedAt: now - 2 * day))
            try await tx.insertRefreshToken(
                RefreshTokenRecord(tokenHash: "spent", familyID: "expired", issuedAt: now - 2 * day, expiresAt: now - day))
            try await tx.insertRevokedAccessToken(jti: "old", expiresAt: now - day)
            try await tx.insertRevokedAccessToken(jti: "current", expiresAt: now + day)
        }
        try await store.close()
    }
}
