import Foundation
import XCTest

/// `broker db backup FILE`, run as the real binary: a consistent copy made with `VACUUM INTO`
/// while `broker serve` runs on the same data directory, checked with the sqlite3 shell (an
/// independent reader) and by a broker serving the copy.
final class DatabaseBackupCLITests: XCTestCase {
    static let password = "correct horse battery staple"

    func testBackupWhileServingIsACompletePrivateStoreWithTheSameRows() throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        XCTAssertEqual(try broker.run(["users", "add", "root", "--admin", "--password-stdin"], stdin: Self.password + "\n").status, 0)
        let (server, _) = try broker.serve()
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        // Written beside the running server, by another process, as an operator would.
        XCTAssertEqual(try broker.run(["users", "add", "bob", "--password-stdin"], stdin: Self.password + "\n").status, 0)
        XCTAssertEqual(try broker.run(["orgs", "add", "org1"]).status, 0)

        let backup = broker.workDirectory.appendingPathComponent("broker-backup.sqlite3")
        let result = try broker.run(["db", "backup", "broker-backup.sqlite3"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "backup written to \(backup.path)\n")
        XCTAssertTrue(server.isRunning, "the server kept running")

        let attributes = try FileManager.default.attributesOfItem(atPath: backup.path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600, "only the owner may read the copy")

        XCTAssertEqual(try Self.sqlite(backup.path, "PRAGMA integrity_check"), "ok")
        let live = try Self.rowCounts(broker.workDirectory.appendingPathComponent("data/broker.sqlite3").path)
        let copied = try Self.rowCounts(backup.path)
        XCTAssertEqual(copied, live)
        XCTAssertEqual(copied["users"], 2)
        XCTAssertGreaterThan(copied.count, 5, "every table is copied: \(copied.keys.sorted())")

        // The copy is a store a broker opens as it is: put it in a data directory of its own.
        let restored = try BrokerBinary.make()
        defer { restored.cleanUp() }
        let data = restored.workDirectory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try FileManager.default.copyItem(at: backup, to: data.appendingPathComponent("broker.sqlite3"))
        let users = try restored.run(["users", "list"])
        XCTAssertEqual(users.status, 0, users.stderr)
        XCTAssertTrue(users.stdout.contains("root") && users.stdout.contains("bob"), users.stdout)
        XCTAssertTrue(try restored.run(["orgs", "list"]).stdout.contains("org1"))
    }

    func testBackupNeverOverwritesAFileOrFollowsALink() throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        XCTAssertEqual(try broker.run(["orgs", "add", "org1"]).status, 0)

        let existing = broker.workDirectory.appendingPathComponent("precious.sqlite3")
        try Data("yesterday's backup".utf8).write(to: existing)
        var result = try broker.run(["db", "backup", existing.path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("\(existing.path) already exists"), result.stderr)
        XCTAssertEqual(try String(contentsOf: existing, encoding: .utf8), "yesterday's backup")

        // A dangling link in place of the backup must not make the copy land where it points.
        let target = broker.workDirectory.appendingPathComponent("elsewhere.sqlite3")
        let link = broker.workDirectory.appendingPathComponent("link.sqlite3")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: target)
        result = try broker.run(["db", "backup", link.path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("already exists"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: target.path))

        result = try broker.run(["db", "backup", broker.workDirectory.appendingPathComponent("no/such/dir/b.sqlite3").path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("cannot create the backup"), result.stderr)
    }

    func testBackupOfAStoreThatDoesNotExistIsRefusedAndCreatesNothing() throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        let missing = broker.workDirectory.appendingPathComponent("mistyped")
        let copy = broker.workDirectory.appendingPathComponent("copy.sqlite3")
        let result = try broker.run(["db", "backup", copy.path, "--data-dir", missing.path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("no database at \(missing.path)/"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: missing.path), "no store was created")
        XCTAssertFalse(FileManager.default.fileExists(atPath: copy.path))
    }

    /// Rows per table, read by the sqlite3 shell.
    static func rowCounts(_ path: String) throws -> [String: Int] {
        let tables = try sqlite(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .split(separator: "\n").map(String.init)
        var counts: [String: Int] = [:]
        for table in tables {
            counts[table] = Int(try sqlite(path, "SELECT count(*) FROM \"\(table)\""))
        }
        return counts
    }

    static func sqlite(_ path: String, _ sql: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sqlite3", "-readonly", path, sql]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "sqlite3 \(path) \(sql)")
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
