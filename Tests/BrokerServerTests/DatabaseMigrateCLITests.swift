import Foundation
import XCTest

/// `broker db migrate`, run as the real binary on each engine: it brings a database to the
/// latest schema and says so; a database newer than the broker is refused by it and by serve.
final class DatabaseMigrateCLITests: XCTestCase {
    func testMigrateReportsTheLatestVersionOnSQLiteAndRefusesANewerSchema() throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        let result = try broker.run(["db", "migrate"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let latest = try XCTUnwrap(Self.version(in: result.stdout), result.stdout)
        XCTAssertGreaterThanOrEqual(latest, 11)
        XCTAssertEqual(try broker.run(["db", "migrate"]).stdout, result.stdout, "a second run has nothing to apply")

        // A newer broker migrated this database since: this one must not touch it.
        let database = broker.workDirectory.appendingPathComponent("data/broker.sqlite3").path
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        shell.arguments = ["sqlite3", database, "INSERT INTO schema_migrations (version, applied_at) VALUES (\(latest + 1), 0)"]
        try shell.run()
        shell.waitUntilExit()
        XCTAssertEqual(shell.terminationStatus, 0)
        let refused = try broker.run(["db", "migrate"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("newer than the latest this broker"), refused.stderr)
        XCTAssertThrowsError(try broker.serve(), "serve refuses it too")
    }

    func testMigrateOnPostgreSQLBringsAnEmptyDatabaseToTheSameVersionAsSQLite() throws {
        let replicas = try ReplicaSet()
        defer { replicas.stop() }
        let onPostgres = try replicas.cli(["db", "migrate"])
        XCTAssertEqual(onPostgres.status, 0, onPostgres.stderr)
        let sqlite = try BrokerBinary.make()
        defer { sqlite.cleanUp() }
        let onSQLite = try sqlite.run(["db", "migrate"])
        XCTAssertEqual(Self.version(in: onPostgres.stdout), Self.version(in: onSQLite.stdout), "one numbering for both engines")
        XCTAssertEqual(
            try replicas.database.query("SELECT max(version) FROM schema_migrations"),
            Self.version(in: onPostgres.stdout).map(String.init))
        try replicas.database.query("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
        let refused = try replicas.cli(["db", "migrate"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("newer than the latest this broker"), refused.stderr)
    }

    /// The version in "the database schema is at version N, ...".
    static func version(in output: String) -> Int? {
        guard let match = output.firstMatch(of: /schema is at version (\d+)/) else { return nil }
        return Int(match.1)
    }
}
