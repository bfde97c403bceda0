import BrokerCore
import BrokerSync
import Foundation
import Logging
import PostgresNIO
import XCTest

@testable import BrokerPostgres

/// The PostgreSQL store's replaceable pool (``PostgresPool``): the probe's direct connection is
/// configured as the pool's connections are, a probe that connects while the database is
/// presumed down replaces the pool, and a replaced pool is shut down only once the leases begun
/// on it have ended (or after its grace). The first tests need no server; the store-level ones
/// need `BROKER_TEST_POSTGRES_URL`.
final class PostgresPoolTests: PostgresDatabaseTestCase {
    // MARK: The probe's connection

    /// Host, port, user, the password of `database_password_file`, database, TLS, startup
    /// parameters and connect timeout: the probe's connection is the pool's, derived from it.
    func testTheProbeConnectsAsThePoolDoes() async throws {
        let url = try DatabaseURL(parsing: "postgres://broker:inurl@db.example:6543/brokerdb?sslmode=require")
        let settings = PostgresStore.Settings(url: url, password: "fromfile", connectTimeout: .seconds(3))
        let client = try PostgresStore.clientConfiguration(settings)
        let direct = try await PostgresPool.connectionConfiguration(client, tls: try PostgresStore.tlsConfiguration(url))
        XCTAssertEqual(direct.host, "db.example")
        XCTAssertEqual(direct.port, 6543)
        XCTAssertEqual(direct.username, "broker")
        XCTAssertEqual(direct.password, "fromfile")
        XCTAssertEqual(direct.database, "brokerdb")
        XCTAssertTrue(direct.tls.isEnforced, "sslmode=require: TLS or no connection")
        XCTAssertEqual(direct.options.connectTimeout, .seconds(3))
        XCTAssertEqual(direct.options.additionalStartupParameters.map { "\($0.0)=\($0.1)" },
            client.options.additionalStartupParameters.map { "\($0.0)=\($0.1)" })
        XCTAssertTrue(direct.options.additionalStartupParameters.contains { $0.0 == "statement_timeout" })

        let plain = try PostgresStore.tlsConfiguration(try DatabaseURL(parsing: "postgres://broker@127.0.0.1:5432/broker"))
        XCTAssertNil(plain, "sslmode=disable on loopback: no TLS")
    }

    func testTheProbeOfAUnixSocketURLConnectsToTheSocket() async throws {
        let url = try DatabaseURL(parsing: "postgres://broker@/broker?host=/run/postgresql")
        let client = try PostgresStore.clientConfiguration(PostgresStore.Settings(url: url))
        let direct = try await PostgresPool.connectionConfiguration(client, tls: nil)
        XCTAssertEqual(direct.unixSocketPath, "/run/postgresql/.s.PGSQL.5432")
        XCTAssertNil(direct.host)
        XCTAssertFalse(direct.tls.isAllowed)
    }

    /// Nothing listens: the probe throws `.unavailable` (refused at once), naming no password.
    func testAProbeOfAClosedPortThrowsUnavailable() async throws {
        let port = try PostgresStoreTests.closedPort()
        let url = try DatabaseURL(parsing: "postgres://broker:Sup3rSecretPw@127.0.0.1:\(port)/broker")
        let settings = PostgresStore.Settings(url: url, connectTimeout: .seconds(2))
        let pool = try PostgresPool(settings: settings, logger: StoreFixture.logger)
        do {
            try await pool.probe(timeout: .seconds(2))
            XCTFail("a probe connected to a closed port")
        } catch {
            let failure = PostgresErrors.storeError(error)
            guard case StoreError.unavailable(let message) = failure else { return XCTFail("expected unavailable, got \(failure)") }
            XCTAssertFalse(message.contains("Sup3rSecretPw"), message)
        }
        await pool.close()
    }

    // MARK: Retiring a replaced pool

    /// A replaced pool still serves the lease begun on it: it is retired, and shut down only
    /// when that lease has ended. Needs no server (the pools never connect).
    func testAReplacedPoolIsShutDownWhenItsLastLeaseEnds() async throws {
        let pool = try self.unreachablePool()
        try await pool.withClient { _ in
            XCTAssertTrue(pool.replace())
            XCTAssertEqual(pool.generation, 2)
            XCTAssertEqual(pool.retiringCount, 1, "the old pool runs while a lease of it is open")
        }
        await pool.retirementsFinished()
        XCTAssertEqual(pool.retiringCount, 0, "shut down once its lease ended")
        // No lease open: the next replacement shuts the old pool down at once.
        XCTAssertTrue(pool.replace())
        await pool.retirementsFinished()
        XCTAssertEqual(pool.retiringCount, 0)
        XCTAssertEqual(pool.generation, 3)
        await pool.close()
        XCTAssertFalse(pool.replace(), "a closed pool is not replaced")
        XCTAssertEqual(pool.generation, 3)
    }

    /// A lease that never ends does not keep a replaced pool running past the grace.
    func testAReplacedPoolIsShutDownAfterTheGraceEvenWithALeaseOpen() async throws {
        let pool = try self.unreachablePool(retirementGrace: .milliseconds(1))
        try await pool.withClient { _ in
            pool.replace()
            await pool.retirementsFinished()
            XCTAssertEqual(pool.retiringCount, 0, "shut down after the grace, under the open lease")
        }
        await pool.close()
    }

    /// Closing shuts down a replaced pool whose lease is still open, with the current one.
    func testClosingShutsDownTheCurrentAndTheRetiringPools() async throws {
        let pool = try self.unreachablePool()
        let leased = Signal()
        let release = Signal()
        let holder = Task {
            try await pool.withClient { _ in
                leased.fire()
                await release.wait()
            }
        }
        await leased.wait()
        pool.replace()
        XCTAssertEqual(pool.retiringCount, 1)
        await pool.close()
        XCTAssertEqual(pool.retiringCount, 0, "close waited for the retiring pool")
        release.fire()
        try await holder.value
    }

    private func unreachablePool(retirementGrace: Duration = PostgresPool.defaultRetirementGrace) throws -> PostgresPool {
        let url = try DatabaseURL(parsing: "postgres://broker@127.0.0.1:\(try PostgresStoreTests.closedPort())/broker")
        return try PostgresPool(
            settings: PostgresStore.Settings(url: url), logger: StoreFixture.logger, retirementGrace: retirementGrace)
    }

    // MARK: The store's probe

    /// The database presumed down, the probe due: the probe connects directly, the pool is
    /// replaced (one warning, no password), and the transaction that carried the probe succeeds
    /// on the new pool and ends the verdict.
    func testAProbeThatConnectsReplacesThePoolAndEndsTheVerdict() async throws {
        let lines = CapturedLines()
        var logger = Logger(label: "probe") { _ in CapturingLogHandler(lines: lines) }
        logger.logLevel = .warning
        let store = try await self.replica(logger: logger) { $0.downRetryInterval = .zero }
        let settings = store.settings
        XCTAssertEqual(store.pool.generation, 1)

        store.breaker.leaseFailed()
        XCTAssertTrue(store.breaker.isDown)
        let users = try await store.read { tx in try await tx.users() }
        XCTAssertEqual(users, [])
        XCTAssertFalse(store.breaker.isDown, "the probe's transaction leased a connection")
        XCTAssertEqual(store.pool.generation, 2, "the probe replaced the pool")
        await store.pool.retirementsFinished()
        XCTAssertEqual(store.pool.retiringCount, 0, "the old pool, with no lease open, is shut down")

        let warnings = lines.all.filter { $0.hasPrefix("warning") }
        XCTAssertEqual(warnings.count, 1, "\(warnings)")
        XCTAssertTrue(warnings.first?.contains("pool replaced") ?? false, "\(warnings)")
        if let password = settings.url.password { XCTAssertFalse(lines.all.contains { $0.contains(password) }) }

        let again = try await store.read { tx in try await tx.users() }
        XCTAssertEqual(again, [], "no verdict, no probe: the new pool serves")
        XCTAssertEqual(store.pool.generation, 2)
    }

    /// A transaction holding a connection of the pool when it is replaced finishes on it: its
    /// statements after the replacement succeed, and the old pool shuts down once it has ended.
    func testAReplacementBreaksNoTransactionInFlight() async throws {
        let store = try await self.replica()
        let inside = Signal()
        let resume = Signal()
        let held = Task {
            try await store.transaction { tx in
                inside.fire()
                await resume.wait()
                _ = try await tx.insertUser(StoreFixture.newUser("alice"))
            }
        }
        await inside.wait()
        XCTAssertTrue(store.pool.replace())
        let meanwhile = try await store.read { tx in try await tx.users() }
        XCTAssertEqual(meanwhile, [], "the new pool serves")
        XCTAssertEqual(store.pool.retiringCount, 1, "the old pool runs while the transaction is open")
        resume.fire()
        try await held.value
        await store.pool.retirementsFinished()
        XCTAssertEqual(store.pool.retiringCount, 0)
        let names = try await store.read { tx in try await tx.users().map(\.username) }
        XCTAssertEqual(names, ["alice"], "the transaction begun on the old pool committed")
    }
}
