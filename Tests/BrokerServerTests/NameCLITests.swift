import BrokerCore
import Foundation
import Logging
import XCTest

@testable import BrokerSQLite

/// One account per name as a person reads it, through the real `broker` binary.
final class NameCLITests: XCTestCase {
    var broker: BrokerBinary!

    override func setUpWithError() throws {
        broker = try BrokerBinary.make()
    }

    override func tearDown() {
        broker.cleanUp()
    }

    private func addUser(_ name: String) throws -> BrokerBinary.Result {
        try broker.run(["users", "add", name, "--no-password"])
    }

    func testNoSecondAliceHowEverItIsSpelled() throws {
        XCTAssertEqual(try addUser("alice").status, 0)
        for (spelling, why) in [
            ("alice\u{200D}", "invisible"), ("al\u{200D}ice", "invisible"),  // zero-width joiner
            ("alice\u{FE0F}", "invisible"),  // variation selector
            ("alice\u{E0061}", "invisible"),  // tag character
            ("\u{0430}lice", "reads the same as the existing user alice"),  // Cyrillic а
            ("ａｌｉｃｅ", "already exists"),  // fullwidth: it is alice
            ("Alice", "reads the same as the existing user alice"),
            ("ALICE", "reads the same as the existing user alice"),
        ] {
            let result = try addUser(spelling)
            XCTAssertEqual(result.status, 1, "\(spelling.unicodeScalars.map { String($0.value, radix: 16) })")
            XCTAssertTrue(result.stderr.contains(why), result.stderr)
        }
        let list = try broker.run(["users", "list"])
        XCTAssertEqual(list.stdout.split(separator: "\n").count, 2, "a header and alice: \(list.stdout)")
        // Any spelling names the one account.
        XCTAssertEqual(try broker.run(["users", "disable", "ALICE"]).status, 0)
        XCTAssertTrue(try broker.run(["users", "list"]).stdout.contains("disabled"))
    }

    func testComposedAndDecomposedJoséAreOneAccount() throws {
        var result = try addUser("jos\u{E9}")
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try addUser("jose\u{301}")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("already exists"), result.stderr)
        result = try broker.run(["users", "passwd", "JOSE\u{301}", "--password-stdin"], stdin: "a long enough password\n")
        XCTAssertEqual(result.status, 0, result.stderr)

        // A decomposed name is stored composed (NFC).
        result = try addUser("rene\u{301}")
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertNotNil(Data(result.stdout.utf8).range(of: Data("created user ren\u{E9} ".utf8)), result.stdout)
        XCTAssertEqual(try addUser("ren\u{E9}").status, 1)
    }

    func testOrganizationNamesIgnoreCaseAndLookAlikes() throws {
        XCTAssertEqual(try broker.run(["orgs", "add", "org1"]).status, 0)
        for name in ["ORG1", "Org1", "orgl"] {
            let result = try broker.run(["orgs", "add", name])
            XCTAssertEqual(result.status, 1, name)
            XCTAssertTrue(result.stderr.contains("reads the same as the existing organization org1"), result.stderr)
        }
        XCTAssertEqual(try broker.run(["users", "add", "alice", "--no-password"]).status, 0)
        XCTAssertEqual(try broker.run(["members", "add", "ORG1", "alice"]).status, 0, "any case finds org1")
        XCTAssertTrue(try broker.run(["members", "list", "org1"]).stdout.contains("alice"))
    }

    func testLengthIsLimitedInBytesAndCodePoints() throws {
        // 150 characters, 18,150 bytes: one letter under sixty combining accents, 150 times.
        let piled = String(repeating: "a" + String(repeating: "\u{301}", count: 60), count: 150)
        var result = try addUser(piled)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("at most 255 bytes"), result.stderr)
        result = try addUser(String(repeating: "b", count: 151))
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(try addUser(String(repeating: "b", count: 150)).status, 0)
        XCTAssertEqual(try broker.run(["users", "list"]).stdout.split(separator: "\n").count, 2)
    }

    /// A database from before the name profile: its look-alikes keep working, and both
    /// `broker users collisions` and `broker serve` at start-up name them.
    func testCollisionsOfAnOldDatabaseAreReported() async throws {
        let data = broker.workDirectory.appendingPathComponent("data").path
        try FilePermissions.ensurePrivateDirectory(data)
        var logger = Logger(label: "seed")
        logger.logLevel = .warning
        let before = Array(Schema.migrations.prefix { !$0.statements.joined().contains("username_key") })
        let old = try await SQLiteStore.open(path: data + "/broker.sqlite3", logger: logger, migrations: before)
        try await old.withExclusiveConnection { connection in
            for (id, name) in [(1, "alice"), (2, "Alice"), (3, "jos\u{E9}"), (4, "jose\u{301}")] {
                _ = try await connection.rows(
                    "INSERT INTO users (id, username, password_hash, is_active, created_at) VALUES (\(id), '\(name)', NULL, 1, 0)")
            }
            for (id, name) in [(1, "org1"), (2, "ORG1")] {
                _ = try await connection.rows(
                    "INSERT INTO organizations (id, name, cluster_name, created_at) VALUES (\(id), '\(name)', '\(name)', 0)")
            }
        }
        try await old.close()

        var result = try broker.run(["users", "collisions"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(
            result.stdout.split(separator: "\n"),
            ["user Alice reads like alice", "user jose\u{301} reads like jos\u{E9}", "organization ORG1 reads like org1"])
        // Both still work, each under its own spelling.
        XCTAssertEqual(try broker.run(["users", "disable", "Alice"]).status, 0)
        result = try broker.run(["users", "list"])
        let rows = result.stdout.split(separator: "\n").dropFirst().map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        XCTAssertEqual(rows.map { "\($0[1]) \($0[2])" }, ["alice active", "Alice disabled", "jos\u{E9} active", "jose\u{301} active"])

        let log = broker.workDirectory.appendingPathComponent("serve.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let (server, _) = try broker.serve(standardError: try FileHandle(forWritingTo: log))
        server.terminate()
        server.waitUntilExit()
        let logged = try String(contentsOf: log, encoding: .utf8)
        XCTAssertTrue(logged.contains("name collision"), logged)
        XCTAssertTrue(logged.contains("ORG1"), logged)
    }
}
