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

        var configuration = BrokerConfiguration()
        configuration.dataDirectory = broker.workDirectory.appendingPathComponent("data").path
        let logger = Logger(label: "test")
        let now = Date()
        let day: TimeInterval = 86_400
        var store = try await SQLiteStore.open(path: configuration.databasePath, logger: logger)
        try await store.transaction { tx in
            let alice = try await tx.user(named: "alice")!
            for (id, expiresAt) in [("expired", now - day), ("live", now + day)] {
                try await tx.insertRefreshFamily(
                    RefreshFamily(
                        id: id, userID: alice.id, scope: .allClusters, authenticatedAt: expiresAt - 7 * day,
                        expiresAt: expiresAt, authenticationMethods: ["pwd"]))
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

        result = try broker.run(["maintenance", "prune"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(
            result.stdout.contains("pruned 1 refresh token(s), 1 session(s), 1 access token revocation(s)"), result.stdout)

        store = try await SQLiteStore.open(path: configuration.databasePath, logger: logger)
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
}
