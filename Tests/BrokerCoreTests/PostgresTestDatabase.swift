import BrokerCore
@testable import BrokerPostgres
import Foundation
import Logging
import XCTest

/// A fresh, empty PostgreSQL database for one test, on the server named by
/// `BROKER_TEST_POSTGRES_URL` (an admin URL, as `scripts/postgres-test-server.sh start DIR`
/// prints). Without the variable, ``create()`` throws `XCTSkip` saying how to run the tests.
struct PostgresTestDatabase {
    static let variable = "BROKER_TEST_POSTGRES_URL"
    static let howToRun =
        "PostgreSQL tests need \(variable): export \(variable)=$(scripts/postgres-test-server.sh start /tmp/broker-pg) "
        + "(and scripts/postgres-test-server.sh stop /tmp/broker-pg afterwards)"

    let admin: DatabaseURL
    let name: String

    static func adminURL() throws -> DatabaseURL {
        guard let text = ProcessInfo.processInfo.environment[variable], !text.isEmpty else {
            throw XCTSkip(howToRun)
        }
        return try DatabaseURL(parsing: text)
    }

    static func create() async throws -> PostgresTestDatabase {
        let admin = try adminURL()
        // Letters and digits only: safe to name in CREATE DATABASE.
        let name = "broker_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await PostgresAdministration.execute(
            "CREATE DATABASE \(name) TEMPLATE template0 ENCODING 'UTF8'",
            on: PostgresStore.Settings(url: admin), logger: StoreFixture.logger)
        return PostgresTestDatabase(admin: admin, name: name)
    }

    /// Settings for a store on this database (each store is its own pool: a replica).
    func settings(poolSize: Int = 4, connectTimeout: Duration = .seconds(5)) -> PostgresStore.Settings {
        var url = self.admin
        url.database = self.name
        return PostgresStore.Settings(url: url, poolSize: poolSize, connectTimeout: connectTimeout)
    }

    func drop() async throws {
        try await PostgresAdministration.execute(
            "DROP DATABASE IF EXISTS \(self.name) WITH (FORCE)", on: PostgresStore.Settings(url: self.admin),
            logger: StoreFixture.logger)
    }
}

/// Tests with a database of their own on `BROKER_TEST_POSTGRES_URL` (skipped without it): the
/// stores they open on it are closed and the database dropped after each test.
class PostgresDatabaseTestCase: XCTestCase {
    var database: PostgresTestDatabase?
    var stores: [PostgresStore] = []

    override func tearDown() async throws {
        for store in self.stores { try await store.close() }
        self.stores = []
        try await self.database?.drop()
        self.database = nil
        try await super.tearDown()
    }

    /// A store on this test's database; each call is another pool, as another replica has.
    func replica(
        migrations: [PostgresMigration] = PostgresSchema.migrations, logger: Logger = StoreFixture.logger,
        _ adjust: (inout PostgresStore.Settings) -> Void = { _ in }
    ) async throws -> PostgresStore {
        if self.database == nil { self.database = try await PostgresTestDatabase.create() }
        var settings = self.database!.settings()
        adjust(&settings)
        let store = try await PostgresStore.open(settings, logger: logger, migrations: migrations)
        self.stores.append(store)
        return store
    }
}
