import Foundation
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `broker db copy`, run as the real binary: a SQLite installation populated over its real
/// routes and CLI is copied into an empty PostgreSQL database, and `broker serve` on that
/// database honours everything issued before the move — the old access token (same `kid` in the
/// same JWKS), the old refresh token and its successor (the HMAC secret moved), the revocation,
/// the password. What must be refused is refused with nothing written, and the database password
/// never appears in what the command prints.
final class DatabaseCopyCLITests: XCTestCase {
    static let password = ReplicaSet.password

    /// A KEK file (mode 0600, or `mode`) in `directory`.
    static func keyEncryptionKey(in directory: URL, mode: Int = 0o600) -> String {
        let path = directory.appendingPathComponent("kek-\(UUID().uuidString.prefix(8))").path
        let kek = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() + "\n"
        _ = FileManager.default.createFile(atPath: path, contents: Data(kek.utf8), attributes: [.posixPermissions: mode])
        return path
    }

    /// The URL's password (the test server's role has one: SCRAM).
    static func password(of url: String) -> String? { URLComponents(string: url)?.password }

    /// The URL without its password, and a file holding it.
    static func splitPassword(_ url: String, into directory: URL) throws -> (url: String, passwordFile: String) {
        var components = try XCTUnwrap(URLComponents(string: url))
        let password = components.password ?? ""
        components.password = nil
        let file = directory.appendingPathComponent("db-password").path
        _ = FileManager.default.createFile(atPath: file, contents: Data((password + "\n").utf8), attributes: [.posixPermissions: 0o600])
        return (try XCTUnwrap(components.string), file)
    }

    /// The verification table's lines: what → (source, target).
    static func counts(in output: String) -> [String: (source: Int, target: Int)] {
        var counts: [String: (Int, Int)] = [:]
        for line in output.split(separator: "\n") {
            guard let match = line.firstMatch(of: /^([a-z_ ]+?)\s+(\d+)\s+(\d+)/) else { continue }
            counts[String(match.1)] = (Int(match.2)!, Int(match.3)!)
        }
        return counts
    }

    static func kid(of token: String) throws -> String {
        var header = String(token.split(separator: ".").first ?? "")
            .replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while header.count % 4 != 0 { header += "=" }
        let object = try JSONSerialization.jsonObject(with: try XCTUnwrap(Data(base64Encoded: header))) as? [String: Any]
        return try XCTUnwrap(object?["kid"] as? String)
    }

    static func kids(_ port: Int) async throws -> Set<String> {
        let jwks = try await ReplicaSet.call("GET", port, "/.well-known/jwks.json")
        XCTAssertEqual(jwks.status, 200, jwks.text)
        return Set((jwks.body["keys"] as? [[String: Any]] ?? []).compactMap { $0["kid"] as? String })
    }

    /// RFC 7009 revocation (a form post).
    static func revoke(_ port: Int, _ token: String) async throws -> Int {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/oauth/revoke")!)
        request.httpMethod = "POST"
        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data("token=\(token)".utf8)
        let (_, response) = try await URLSession.shared.data(for: request)
        return (response as! HTTPURLResponse).statusCode
    }

    static func membershipStatus(_ port: Int, _ token: String) async throws -> ReplicaSet.Answer {
        try await ReplicaSet.call("GET", port, "/api/membership_status/lab/", bearer: token)
    }

    static func stop(_ process: Process) {
        process.terminate()
        process.waitUntilExit()
    }

    /// alice (member of lab) and bob, on a SQLite broker that has served once (so it has a ring).
    static func populatedSQLiteBroker() throws -> BrokerBinary {
        // The grace lets the test present an already used refresh token after the move.
        let broker = try BrokerBinary.make(extraConfig: "refresh_reuse_grace: 60")
        for user in ["alice", "bob"] {
            let added = try broker.run(["users", "add", user, "--password-stdin"], stdin: password + "\n")
            XCTAssertEqual(added.status, 0, added.stderr)
        }
        XCTAssertEqual(try broker.run(["orgs", "add", "lab"]).status, 0)
        XCTAssertEqual(try broker.run(["members", "add", "lab", "alice"]).status, 0)
        return broker
    }

    func testACopiedInstallationServesFromPostgreSQLAndHonoursEveryTokenIssuedBeforeTheMove() async throws {
        let database = try TestPostgresDatabase.make()
        defer { database.drop() }
        let sqlite = try Self.populatedSQLiteBroker()
        defer { sqlite.cleanUp() }
        let kek = Self.keyEncryptionKey(in: sqlite.workDirectory)

        // A ring with a retired key (which signed a token still good), an active and a next key.
        var (server, port) = try sqlite.serve()
        let early = try await ReplicaSet.login(port, "alice", "lab")
        Self.stop(server)
        let rotated = try sqlite.run(["keys", "rotate", "--force"])
        XCTAssertEqual(rotated.status, 0, rotated.stderr)
        (server, port) = try sqlite.serve()

        let kept = try await ReplicaSet.login(port, "alice", "lab")
        let revoked = try await ReplicaSet.login(port, "alice", "lab")
        let revocation = try await Self.revoke(port, revoked.access)
        XCTAssertEqual(revocation, 200)
        let refusedBefore = try await Self.membershipStatus(port, revoked.access)
        XCTAssertEqual(refusedBefore.status, 401, refusedBefore.text)
        let session = try await ReplicaSet.call(
            "POST", port, "/api/session", json: #"{"username":"bob","password":"\#(Self.password)"}"#)
        XCTAssertEqual(session.status, 200, session.text)
        let request = try await ReplicaSet.call(
            "POST", port, "/api/orgs/lab/membership-requests", bearer: session.body["token"] as? String)
        XCTAssertEqual(request.status, 201, request.text)
        let kidsBefore = try await Self.kids(port)
        XCTAssertEqual(kidsBefore.count, 3)
        XCTAssertNotEqual(try Self.kid(of: early.access), try Self.kid(of: kept.access), "signed before and after the rotation")
        let rotation = try await ReplicaSet.refresh(port, kept.refresh)
        XCTAssertEqual(rotation.status, 200, rotation.text)
        let successor = try XCTUnwrap(rotation.body["refresh"] as? String)
        Self.stop(server)

        let (url, passwordFile) = try Self.splitPassword(database.url, into: sqlite.workDirectory)
        var copier = sqlite
        copier.environment["BROKER_KEY_ENCRYPTION_KEY_FILE"] = kek
        let copy = try copier.run(["db", "copy", "--to", url, "--to-password-file", passwordFile])
        XCTAssertEqual(copy.status, 0, copy.stdout + copy.stderr)
        XCTAssertTrue(copy.stdout.contains("every count matches"), copy.stdout)
        let counts = Self.counts(in: copy.stdout)
        for (what, count) in counts { XCTAssertEqual(count.source, count.target, what) }
        let expected = [
            "users": 2, "organizations": 1, "memberships": 1, "membership_requests": 1, "revoked_access_tokens": 1,
            "signing keys": 3, "server secrets": 3,  // refresh successors, audit usernames, the portal
        ]
        for (what, count) in expected { XCTAssertEqual(counts[what]?.target, count, "\(what) in \(copy.stdout)") }
        for what in ["audience_names", "refresh_families", "refresh_tokens", "signing_key_lifetimes"] {
            XCTAssertGreaterThan(counts[what]?.target ?? 0, 0, "\(what) in \(copy.stdout)")
        }
        let secret = try XCTUnwrap(Self.password(of: database.url))
        XCTAssertFalse((copy.stdout + copy.stderr).contains(secret), "the database password is never printed")
        XCTAssertFalse((copy.stdout + copy.stderr).contains("PRIVATE KEY"))

        // A replica of the new installation: nothing of its own but the database and the KEK.
        var replica = try BrokerBinary.make(extraConfig: "refresh_reuse_grace: 60")
        defer { replica.cleanUp() }
        replica.environment["BROKER_DATABASE_URL"] = database.url
        replica.environment["BROKER_KEY_ENCRYPTION_KEY_FILE"] = kek
        let (postgresServer, postgresPort) = try replica.serve()
        defer { Self.stop(postgresServer) }

        // The old refresh token, used once before the move and presented again within the
        // grace: the same successor, derived again with the HMAC secret that moved.
        let again = try await ReplicaSet.refresh(postgresPort, kept.refresh)
        XCTAssertEqual(again.status, 200, again.text)
        XCTAssertEqual(again.body["refresh"] as? String, successor, "the refresh-successor secret moved with the ring")
        let onward = try await ReplicaSet.refresh(postgresPort, successor)
        XCTAssertEqual(onward.status, 200, onward.text)

        let kidsAfter = try await Self.kids(postgresPort)
        XCTAssertEqual(kidsAfter, kidsBefore, "the same JWKS")
        for token in [early.access, kept.access] {
            XCTAssertTrue(kidsAfter.contains(try Self.kid(of: token)))
            let accepted = try await Self.membershipStatus(postgresPort, token)
            XCTAssertEqual(accepted.status, 200, accepted.text)
        }
        let refusedAfter = try await Self.membershipStatus(postgresPort, revoked.access)
        XCTAssertEqual(refusedAfter.status, 401, refusedAfter.text)
        XCTAssertTrue(refusedAfter.text.contains("revoked"), refusedAfter.text)
        let login = try await ReplicaSet.login(postgresPort, "alice", "lab")
        XCTAssertFalse(login.access.isEmpty, "the same password logs in")
        XCTAssertEqual(try database.query("SELECT count(*) FROM membership_requests"), "1")
    }

    func testACopyIsRefusedWithNothingWrittenWhenItCannotBeFaithful() throws {
        let database = try TestPostgresDatabase.make()
        defer { database.drop() }
        let sqlite = try Self.populatedSQLiteBroker()
        defer { sqlite.cleanUp() }
        let (server, _) = try sqlite.serve()
        var outputs = ""
        func copy(kek: String?, _ arguments: [String] = []) throws -> BrokerBinary.Result {
            var copier = sqlite
            if let kek { copier.environment["BROKER_KEY_ENCRYPTION_KEY_FILE"] = kek }
            let result = try copier.run(["db", "copy", "--to", database.url] + arguments)
            outputs += result.stdout + result.stderr
            return result
        }
        let kek = Self.keyEncryptionKey(in: sqlite.workDirectory)

        // broker serve still runs on the source: what it writes next would be lost.
        var refused = try copy(kek: kek)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("stop broker serve"), refused.stderr)
        Self.stop(server)

        // No KEK, or one others can read: the ring cannot be sealed.
        refused = try copy(kek: nil)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("key_encryption_key_file"), refused.stderr)
        refused = try copy(kek: Self.keyEncryptionKey(in: sqlite.workDirectory, mode: 0o644))
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("accessible to group or others"), refused.stderr)
        XCTAssertEqual(try database.query("SELECT to_regclass('public.users') IS NULL"), "t", "the target untouched")

        // A source whose schema is not this broker's.
        let file = sqlite.workDirectory.appendingPathComponent("data/broker.sqlite3").path
        let latest = try XCTUnwrap(Int(Self.sqlite(file, "SELECT max(version) FROM schema_migrations")))
        _ = try Self.sqlite(file, "INSERT INTO schema_migrations (version, applied_at) VALUES (\(latest + 1), 0)")
        refused = try copy(kek: kek)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("newer than this broker"), refused.stderr)
        // Recorded one step behind (the step's table stays: the version alone decides).
        _ = try Self.sqlite(file, "DELETE FROM schema_migrations WHERE version >= \(latest)")
        refused = try copy(kek: kek)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("broker db migrate"), refused.stderr)
        XCTAssertEqual(try database.query("SELECT to_regclass('public.users') IS NULL"), "t", "the target untouched")
        XCTAssertEqual(try Self.sqlite(file, "SELECT max(version) FROM schema_migrations"), String(latest - 1), "nor the source migrated")
        _ = try Self.sqlite(file, "INSERT INTO schema_migrations (version, applied_at) VALUES (\(latest), 0)")

        // Into a database that holds data: refused, its rows as they were.
        let first = try copy(kek: kek)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(try sqlite.run(["users", "add", "carol", "--password-stdin"], stdin: Self.password + "\n").status, 0)
        refused = try copy(kek: kek)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("not empty"), refused.stderr)
        XCTAssertEqual(try database.query("SELECT count(*) FROM users"), "2")

        // A PostgreSQL source opened with the wrong KEK: refused before anything is written.
        let other = try TestPostgresDatabase.make()
        defer { other.drop() }
        var mover = sqlite
        mover.environment["BROKER_KEY_ENCRYPTION_KEY_FILE"] = Self.keyEncryptionKey(in: sqlite.workDirectory)
        let wrongKEK = try mover.run(["db", "copy", "--from", database.url, "--to", other.url])
        outputs += wrongKEK.stdout + wrongKEK.stderr
        XCTAssertEqual(wrongKEK.status, 1)
        XCTAssertTrue(wrongKEK.stderr.contains("not the one the key ring was sealed with"), wrongKEK.stderr)
        XCTAssertEqual(try other.query("SELECT count(*) FROM users"), "0")
        let moved = try mover.run(["db", "copy", "--from", database.url, "--to", other.url, "--from-key-encryption-key-file", kek])
        outputs += moved.stdout + moved.stderr
        XCTAssertEqual(moved.status, 0, moved.stderr)
        XCTAssertEqual(try other.query("SELECT count(*) FROM users"), "2")

        let secret = try XCTUnwrap(Self.password(of: database.url))
        XCTAssertFalse(outputs.contains(secret), "the database password is never printed")
    }

    @discardableResult
    static func sqlite(_ file: String, _ sql: String) throws -> String {
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        shell.arguments = ["sqlite3", file, sql]
        let out = Pipe()
        shell.standardOutput = out
        try shell.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        shell.waitUntilExit()
        XCTAssertEqual(shell.terminationStatus, 0, sql)
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
