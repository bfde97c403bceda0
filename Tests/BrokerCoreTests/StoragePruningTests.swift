import BrokerCore
import Foundation
import Logging
import XCTest

@testable import BrokerSQLite

/// ``StoragePruner``: the store keeps what can still matter (every used refresh token of a live
/// session, for reuse detection) and loses the rest, batch by batch.
final class StoragePruningTests: XCTestCase {
    var harness: CoreHarness!
    var service: OrgTokenService { harness.services.orgTokens }
    var store: SQLiteStore { harness.services.store as! SQLiteStore }

    override func setUp() async throws {
        harness = try await CoreHarness.make()
        try await harness.seed()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    func login() async throws -> TokenBundle {
        try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
    }

    struct RowCounts: Equatable {
        var sessions: Int
        var refreshTokens: Int
        var revokedAccessTokens: Int
    }

    func assertRows(_ expected: RowCounts, file: StaticString = #filePath, line: UInt = #line) async throws {
        let counts = try await rowCounts()
        XCTAssertEqual(counts, expected, file: file, line: line)
    }

    func rowCounts() async throws -> RowCounts {
        try await store.withExclusiveConnection { connection in
            func count(_ table: String) async throws -> Int {
                Int(try await connection.rows("SELECT COUNT(*) AS n FROM \(table)").first?.int64("n") ?? -1)
            }
            return RowCounts(
                sessions: try await count("refresh_families"), refreshTokens: try await count("refresh_tokens"),
                revokedAccessTokens: try await count("revoked_access_tokens"))
        }
    }

    /// Pages of the database file that hold data (the file itself never shrinks; freed pages
    /// are reused).
    func pages() async throws -> (file: Int, used: Int) {
        try await store.withExclusiveConnection { connection in
            let pages = try await connection.rows("PRAGMA page_count").first?.int64("page_count") ?? 0
            let free = try await connection.rows("PRAGMA freelist_count").first?.int64("freelist_count") ?? 0
            return (Int(pages), Int(pages - free))
        }
    }

    func testReusedOldRefreshTokenIsStillDetectedAfterPruningUntilTheSessionExpires() async throws {
        let first = try await login()
        var bundle = first
        for _ in 0..<4 {
            harness.clock.advance(by: 1800)
            bundle = try await service.refresh(bundle.refresh)
        }
        // Three days on: the first token expired two days ago, the last one (unused) yesterday.
        harness.clock.advance(by: 3 * 86_400)
        var removed = try await harness.services.pruner.prune()
        XCTAssertEqual(removed, PrunedRows(refreshTokens: 1), "only the expired unused token goes")
        try await assertRows(RowCounts(sessions: 1, refreshTokens: 4, revokedAccessTokens: 0))

        // The first token, long expired, is still known as used: reuse, and the session ends.
        await XCTAssertBrokerError(.refreshTokenReused) { try await self.service.refresh(first.refresh) }
        let familyID = bundle.claims.sessionID!
        let revoked = try await store.transaction { tx in try await tx.refreshFamily(id: familyID) }
        XCTAssertNotNil(revoked?.revokedAt)

        // A revoked session's tokens no longer matter; the session itself stays until it
        // expires, so that its access tokens are refused as revoked.
        removed = try await harness.services.pruner.prune()
        XCTAssertEqual(removed, PrunedRows(refreshTokens: 4))
        try await assertRows(RowCounts(sessions: 1, refreshTokens: 0, revokedAccessTokens: 0))
        await XCTAssertBrokerError(.invalidRefreshToken) { try await self.service.refresh(first.refresh) }

        // Past session_max_lifetime (and the clock skew) the session goes too.
        harness.clock.advance(by: 4 * 86_400 + 31)
        removed = try await harness.services.pruner.prune()
        XCTAssertEqual(removed, PrunedRows(sessions: 1))
        try await assertRows(RowCounts(sessions: 0, refreshTokens: 0, revokedAccessTokens: 0))
    }

    func testUsedTokensOfALiveSessionAreKeptUntilItExpires() async throws {
        var bundle = try await login()
        let start = harness.clock.now()
        var used: [String] = []
        // A client refreshing every 30 minutes for six and a half days.
        while harness.clock.now() < start.addingTimeInterval(6.5 * 86_400) {
            harness.clock.advance(by: 1800)
            used.append(bundle.refresh)
            bundle = try await service.refresh(bundle.refresh)
            if used.count % 48 == 0 { try await harness.services.pruner.prune() }
        }
        try await harness.services.pruner.prune()
        let refreshTokens = try await rowCounts().refreshTokens
        XCTAssertEqual(refreshTokens, used.count + 1, "every used token stays while the session lives")
        // Any of them, even the first, still revokes the session when presented again.
        await XCTAssertBrokerError(.refreshTokenReused) { try await self.service.refresh(used[0]) }
        await XCTAssertBrokerError(.invalidRefreshToken) { try await self.service.refresh(bundle.refresh) }
    }

    func testPruneRemovesExpiredSessionsAndRevocationsButNotLiveOnes() async throws {
        var expiring = try await login()
        for _ in 0..<2 {
            harness.clock.advance(by: 1800)
            expiring = try await service.refresh(expiring.refresh)
        }
        let user = try await store.transaction { tx in try await tx.user(named: "alice") }!
        let now = harness.clock.now()
        let brokerSession = try await PresentedTokens.startSession(
            in: store, for: user, scope: .broker, methods: [.password], client: .broker, authenticatedAt: now,
            expiresAt: now.addingTimeInterval(900))
        try await store.transaction { tx in
            try await tx.insertRevokedAccessToken(jti: "expires-soon", expiresAt: now.addingTimeInterval(3600))
            try await tx.insertRevokedAccessToken(jti: "expires-later", expiresAt: now.addingTimeInterval(30 * 86_400))
        }
        harness.clock.advance(by: 8 * 86_400)
        let live = try await login()
        try await assertRows(RowCounts(sessions: 3, refreshTokens: 4, revokedAccessTokens: 2))

        let removed = try await harness.services.pruner.prune()
        XCTAssertEqual(removed, PrunedRows(refreshTokens: 3, sessions: 2, revokedAccessTokens: 1))
        try await assertRows(RowCounts(sessions: 1, refreshTokens: 1, revokedAccessTokens: 1))
        let (gone, kept, stillRevoked) = try await store.transaction { tx in
            (
                try await tx.refreshFamily(id: brokerSession.id), try await tx.refreshFamily(id: live.claims.sessionID!),
                try await tx.isAccessTokenRevoked(jti: "expires-later")
            )
        }
        XCTAssertNil(gone)
        XCTAssertNotNil(kept)
        XCTAssertTrue(stillRevoked)
        // A pruned session's tokens are refused; the live one renews.
        await XCTAssertBrokerError(.invalidRefreshToken) { try await self.service.refresh(expiring.refresh) }
        _ = try await service.refresh(live.refresh)
        let nothing = try await harness.services.pruner.prune()
        XCTAssertEqual(nothing, PrunedRows(), "nothing left to prune")
    }

    func testEachBatchIsBoundedAndThePrunerFinishes() async throws {
        for _ in 0..<5 {
            let bundle = try await login()
            harness.clock.advance(by: 60)
            _ = try await service.refresh(bundle.refresh)
        }
        harness.clock.advance(by: 8 * 86_400)
        try await assertRows(RowCounts(sessions: 5, refreshTokens: 10, revokedAccessTokens: 0))
        let cutoffs = PruneCutoffs(now: harness.clock.now(), leeway: 30)
        let batch = try await store.transaction { tx in try await tx.pruneStorage(cutoffs, limit: 3) }
        XCTAssertEqual(batch.total, 3)
        try await assertRows(RowCounts(sessions: 5, refreshTokens: 7, revokedAccessTokens: 0))

        let pruner = StoragePruner(store: store, clock: harness.clock, leeway: 30, batchSize: 2, logger: .init(label: "test"))
        let removed = try await pruner.prune()
        XCTAssertEqual(removed, PrunedRows(refreshTokens: 7, sessions: 5))
        try await assertRows(RowCounts(sessions: 0, refreshTokens: 0, revokedAccessTokens: 0))
    }

    /// A client renewing as fast as the throttle lets it, session after session: without the
    /// pruner the rows pile up; with it, each expired session leaves nothing behind and the
    /// database file stops growing.
    func testStorageStaysBoundedUnderARefreshLoop() async throws {
        try await harness.shutdown()
        harness = try await CoreHarness.make { configuration in
            configuration.accessLifetime = 60
            configuration.refreshLifetime = 300
            configuration.sessionMaxLifetime = 3600
        }
        try await harness.seed()
        var usedPages: [Int] = []
        var filePages: [Int] = []
        for _ in 0..<4 {
            var bundle = try await login()
            var refreshes = 0
            for _ in 0..<350 {
                harness.clock.advance(by: 10)
                do {
                    bundle = try await service.refresh(bundle.refresh)
                    refreshes += 1
                } catch let error as BrokerError where error.code == .tooManyAttempts || error.code == .sessionExpired {
                }
            }
            XCTAssertGreaterThan(refreshes, 300)
            let refreshTokens = try await rowCounts().refreshTokens
            XCTAssertEqual(refreshTokens, refreshes + 1)
            harness.clock.advance(by: 3600)
            try await harness.services.pruner.prune()
            try await assertRows(RowCounts(sessions: 0, refreshTokens: 0, revokedAccessTokens: 0))
            let (file, used) = try await pages()
            usedPages.append(used)
            filePages.append(file)
        }
        XCTAssertEqual(Set(usedPages).count, 1, "the same pages in use after every round: \(usedPages)")
        // A round fills about 20 pages; later rounds reuse the freed ones (allocation may differ
        // by a page or two from one round to the next).
        XCTAssertLessThanOrEqual(filePages.max()! - filePages[0], 2, "the file stops growing after the first round: \(filePages)")
    }

    /// Pruning runs every ten minutes beside logins: none of its statements may read a whole
    /// table (`SCAN`), however many tokens the store holds.
    func testEveryPruningStatementFindsItsRowsThroughAnIndex() async throws {
        let statements = SQLiteTransaction.pruneStatements
        for sql in [
            statements.tokensOfEndedSessions, statements.expiredUnusedTokens, statements.expiredSessions,
            statements.expiredRevocations, statements.expiredInvitations,
        ] {
            let plan = try await store.withExclusiveConnection { connection in
                let bound = sql.replacingOccurrences(of: "?1", with: "1800000000.0").replacingOccurrences(of: "?2", with: "500")
                return try await connection.rows("EXPLAIN QUERY PLAN \(bound)").map { try $0.string("detail") }
            }
            XCTAssertFalse(plan.isEmpty)
            XCTAssertFalse(plan.contains { $0.hasPrefix("SCAN") }, "\(plan) for \(sql)")
        }
    }
}
