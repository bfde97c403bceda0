import BrokerCore
import BrokerPostgres
import Foundation
import Logging
import XCTest

/// `database_url` through the real binary: the password never reaches standard output or a log
/// line, an unreachable database fails in bounded time, the CLI works on PostgreSQL, and
/// `broker db backup` refuses it.
final class DatabaseURLCLITests: XCTestCase {
    private let password = "Db-Pa55-4e1f9c"

    func testConfigCheckMasksTheDatabasePasswordAndNamesABadURLWithoutIt() throws {
        var broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        broker.environment["BROKER_DATABASE_URL"] = "postgres://broker:\(password)@db.example.org:5432/broker"
        var result = try broker.run(["config", "check"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertFalse((result.stdout + result.stderr).contains(password))
        let settings = try ConfigCheckCLITests.settings(result.stdout)
        XCTAssertEqual(
            settings["database_url"]?.value, "postgres://broker:********@db.example.org:5432/broker?sslmode=verify-full")
        XCTAssertEqual(settings["database_url"]?.source, "environment BROKER_DATABASE_URL")
        XCTAssertEqual(settings["database_pool_size"]?.value, "10")

        broker.environment["BROKER_DATABASE_URL"] = "postgres://broker:\(password)@db.example.org/broker?sslmode=sometimes"
        result = try broker.run(["config", "check"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("sslmode"), result.stderr)
        XCTAssertFalse((result.stdout + result.stderr).contains(password), result.stdout + result.stderr)
    }

    /// Nothing listens: the command fails within about the connect timeout, says the database is
    /// unavailable, and not one line (debug logs included) shows the password.
    func testAnUnreachableDatabaseFailsInBoundedTimeWithoutShowingThePassword() throws {
        var broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        let port = try Self.closedPort()
        broker.environment["BROKER_DATABASE_URL"] = "postgres://broker:\(password)@127.0.0.1:\(port)/broker"
        broker.environment["BROKER_DATABASE_CONNECT_TIMEOUT"] = "1"
        broker.environment["BROKER_LOG_LEVEL"] = "trace"
        let started = Date()
        let result = try broker.run(["users", "collisions"])
        XCTAssertLessThan(Date().timeIntervalSince(started), 15, "bounded, not a hang")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("storage unavailable"), result.stderr)
        XCTAssertFalse((result.stdout + result.stderr).contains(password), result.stderr)
        XCTAssertTrue(result.stderr.contains("broker:********@127.0.0.1"), "the store's log line masks it: \(result.stderr)")
    }

    /// The CLI on a PostgreSQL database, its password read from `database_password_file`; no
    /// `data_dir` database is created; `broker db backup` points to PostgreSQL's tools.
    func testTheCommandLineWorksOnPostgreSQLWithAPasswordFile() async throws {
        let database = try await Self.freshDatabase()
        do {
            try self.runTheCommandLine(on: database)
        } catch {
            try? await database.drop()
            throw error
        }
        try await database.drop()
    }

    private func runTheCommandLine(on database: Database) throws {
        var broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        var url = database.url
        let password = try XCTUnwrap(url.password)
        url.password = nil
        let passwordFile = broker.workDirectory.appendingPathComponent("db-password")
        try (password + "\n").write(to: passwordFile, atomically: true, encoding: .utf8)
        broker.environment["BROKER_DATABASE_URL"] =
            "postgres://\(url.user)@\(url.host):\(url.port)/\(url.database)?sslmode=disable"
        broker.environment["BROKER_DATABASE_PASSWORD_FILE"] = passwordFile.path
        var result = try broker.run(["users", "add", "--no-password", "alice"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("created user alice"), result.stdout)
        result = try broker.run(["users", "add", "--no-password", "ALICE"])
        XCTAssertEqual(result.status, 1, "the name is taken on the shared database")
        XCTAssertFalse((result.stdout + result.stderr).contains(password))
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: broker.workDirectory.appendingPathComponent("data/broker.sqlite3").path),
            "no SQLite database beside the PostgreSQL one")

        result = try broker.run(["db", "backup", broker.workDirectory.appendingPathComponent("copy.sqlite3").path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("pg_dump"), result.stderr)
    }

    // MARK: Helpers

    struct Database {
        var admin: DatabaseURL
        var url: DatabaseURL

        func drop() async throws {
            try await PostgresAdministration.execute(
                "DROP DATABASE IF EXISTS \(url.database) WITH (FORCE)", on: PostgresStore.Settings(url: admin),
                logger: Logger(label: "test"))
        }
    }

    static func freshDatabase() async throws -> Database {
        guard let text = ProcessInfo.processInfo.environment["BROKER_TEST_POSTGRES_URL"], !text.isEmpty else {
            throw XCTSkip(
                "PostgreSQL tests need BROKER_TEST_POSTGRES_URL: "
                    + "export BROKER_TEST_POSTGRES_URL=$(scripts/postgres-test-server.sh start /tmp/broker-pg)")
        }
        let admin = try DatabaseURL(parsing: text)
        let name = "broker_cli_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await PostgresAdministration.execute(
            "CREATE DATABASE \(name) TEMPLATE template0 ENCODING 'UTF8'", on: PostgresStore.Settings(url: admin),
            logger: Logger(label: "test"))
        var url = admin
        url.database = name
        return Database(admin: admin, url: url)
    }

    /// A loopback port nothing listens on (bound, then closed).
    static func closedPort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EBADF) }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
