import BrokerCore
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

@testable import BrokerSQLite

/// What one active user costs in storage, over real HTTP: the database (rows and their indexes)
/// and the audit log, for a SlideRule generation-1 client renewing at half the access lifetime,
/// and for a client renewing as fast as the throttle allows. Once the session has expired and
/// the pruner has run, the database holds nothing more than before the login.
/// The figures are printed (`storage:` lines) for docs/operations.md, "Storage growth".
final class StorageGrowthHTTPTests: XCTestCase {
    var harness: ServerHarness!
    var store: SQLiteStore { harness.services.store as! SQLiteStore }

    override func setUp() async throws {
        _ = TestMetrics.registry
        harness = try await ServerHarness.make()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    /// Bytes of the database's pages that hold data (freed pages are reused, not returned).
    func databaseBytes() async throws -> Int {
        try await store.withExclusiveConnection { connection in
            let size = try await connection.rows("PRAGMA page_size").first?.int64("page_size") ?? 0
            let pages = try await connection.rows("PRAGMA page_count").first?.int64("page_count") ?? 0
            let free = try await connection.rows("PRAGMA freelist_count").first?.int64("freelist_count") ?? 0
            return Int(size * (pages - free))
        }
    }

    func auditBytes() throws -> Int {
        let path = harness.services.configuration.auditLogPath
        guard FileManager.default.fileExists(atPath: path) else { return 0 }  // created by the first line
        return (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    }

    /// Logs in, then renews every `interval` seconds for `duration` seconds; returns the number
    /// of renewals and the database and audit bytes they added (login included).
    func session(interval: TimeInterval, duration: TimeInterval) async throws -> (renewals: Int, database: Int, audit: Int) {
        let harness = self.harness!
        let (database, audit) = (try await databaseBytes(), try auditBytes())
        let renewals = try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/api/org_token/", Generation1HTTPTests.login)
            var refresh = try XCTUnwrap(login["refresh"] as? String)
            var renewals = 0
            var elapsed: TimeInterval = 0
            while elapsed + interval <= duration {
                harness.clock.advance(by: interval)
                elapsed += interval
                let (status, body) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(refresh)"}"#)
                XCTAssertEqual(status, .ok)
                refresh = try XCTUnwrap(body["refresh"] as? String)
                renewals += 1
            }
            return renewals
        }
        return (renewals, try await databaseBytes() - database, try auditBytes() - audit)
    }

    func testStoragePerActiveUserPerDayAndNothingLeftAfterPruning() async throws {
        let baseline = try await databaseBytes()
        // A generation-1 client with the default access lifetime (1 h) renews every 30 min.
        let day = try await session(interval: 1800, duration: 86_400)
        XCTAssertEqual(day.renewals, 48)
        print("storage: renewing every 30 min for a day: \(day.renewals) renewals, database +\(day.database) bytes, audit log +\(day.audit) bytes")
        // As fast as the throttle allows (6 a minute) for an hour, for a per-renewal figure.
        let loop = try await session(interval: 10, duration: 3600)
        XCTAssertEqual(loop.renewals, 360)
        let perRenewal = (database: loop.database / loop.renewals, audit: loop.audit / loop.renewals)
        print("storage: renewing every 10 s for an hour: \(loop.renewals) renewals, database +\(loop.database) bytes (\(perRenewal.database)/renewal), audit log +\(loop.audit) bytes (\(perRenewal.audit)/renewal)")
        XCTAssertLessThan(perRenewal.database, 400, "a renewal stores one refresh token row and its index entries")
        XCTAssertLessThan(perRenewal.audit, 400, "a renewal writes one audit line")

        // Once both sessions are past session_max_lifetime, pruning leaves the database as it was
        // before the first login; the audit log keeps its lines.
        harness.clock.advance(by: 7 * 86_400)
        let audit = try auditBytes()
        let removed = try await harness.services.pruner.prune()
        XCTAssertEqual(removed, PrunedRows(refreshTokens: day.renewals + loop.renewals + 2, sessions: 2))
        let afterPruning = try await databaseBytes()
        XCTAssertLessThanOrEqual(afterPruning, baseline)
        XCTAssertEqual(try auditBytes(), audit)
    }

    /// What the pruner deleted and the renewals the limit refused show in `/metrics`.
    func testPrunedRowsAndRefusedRenewalsAreCounted() async throws {
        let harness = self.harness!
        try await harness.withMetrics { client in
            let before = try await client.scrape()
            let (_, login) = try await client.postJSON("/api/org_token/", Generation1HTTPTests.login)
            var refresh = try XCTUnwrap(login["refresh"] as? String)
            for _ in 0..<7 {
                let (status, body) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(refresh)"}"#)
                if status == .ok { refresh = try XCTUnwrap(body["refresh"] as? String) }
            }
            harness.clock.advance(by: 8 * 86_400)
            try await harness.services.pruner.prune()
            let after = try await client.scrape()
            XCTAssertEqual(after.delta(from: before, "broker_throttled_total", ["scope": "session"]), 1)
            XCTAssertEqual(after.delta(from: before, "broker_storage_pruned_total", ["kind": "refresh_token"]), 7)
            XCTAssertEqual(after.delta(from: before, "broker_storage_pruned_total", ["kind": "session"]), 1)
        }
    }
}
