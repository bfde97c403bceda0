import Foundation
import XCTest

/// The `broker` command line, run as a user runs it: a real process on a real store.
final class CLITests: XCTestCase {
    var broker: BrokerBinary!

    override func setUpWithError() throws {
        broker = try BrokerBinary.make()
    }

    override func tearDown() {
        broker.cleanUp()
    }

    func testUsersOrgsAndMembers() throws {
        var result = try broker.run(["users", "add", "alice", "--password-stdin"], stdin: "correct horse battery staple\n")
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("created user alice"))
        XCTAssertFalse(result.stdout.contains("correct horse"), "the password is never echoed")

        result = try broker.run(["users", "add", "alice", "--password-stdin"], stdin: "correct horse battery staple\n")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("already exists"), result.stderr)

        result = try broker.run(["users", "add", "shorty", "--password-stdin"], stdin: "short\n")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("at least 12"), result.stderr)

        result = try broker.run(["users", "add", "bad name!", "--password-stdin"], stdin: "correct horse battery staple\n")
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("letters, digits"), result.stderr)

        XCTAssertEqual(try broker.run(["users", "passwd", "alice", "--password-stdin"], stdin: "another long password\n").status, 0)
        XCTAssertEqual(try broker.run(["users", "disable", "alice"]).status, 0)
        result = try broker.run(["users", "list"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.contains("alice"))
        XCTAssertTrue(result.stdout.contains("disabled"))
        XCTAssertTrue(result.stdout.contains("argon2id"))
        XCTAssertFalse(result.stdout.contains("$argon2id$"), "hashes are never printed")

        XCTAssertEqual(try broker.run(["orgs", "add", "org1"]).status, 0)
        XCTAssertEqual(try broker.run(["orgs", "add", "org2", "--cluster", "cluster-2"]).status, 0)
        result = try broker.run(["orgs", "list"])
        XCTAssertTrue(result.stdout.contains("cluster-2"))
        XCTAssertEqual(try broker.run(["members", "add", "org1", "alice", "--role", "owner"]).status, 0)
        result = try broker.run(["members", "list", "org1"])
        XCTAssertTrue(result.stdout.contains("alice") && result.stdout.contains("owner"), result.stdout)
        XCTAssertEqual(try broker.run(["members", "add", "org1", "alice", "--role", "king"]).status, 64, "a usage error (EX_USAGE)")
        XCTAssertEqual(try broker.run(["members", "remove", "org1", "alice"]).status, 0)
        XCTAssertEqual(try broker.run(["members", "remove", "org1", "alice"]).status, 1)
        XCTAssertEqual(try broker.run(["members", "add", "nope", "alice"]).status, 1)
    }

    func testLinkGitHub() throws {
        XCTAssertEqual(try broker.run(["users", "add", "alice", "--no-password"]).status, 0)
        XCTAssertEqual(try broker.run(["users", "add", "bob", "--no-password"]).status, 0)
        var result = try broker.run(["users", "link-github", "alice", "Alice-GH"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(try broker.run(["users", "list"]).stdout.contains("Alice-GH"))
        result = try broker.run(["users", "link-github", "bob", "alice-gh"])
        XCTAssertEqual(result.status, 1, "GitHub logins are case-insensitive: already linked")
        XCTAssertTrue(result.stderr.contains("linked to another account"), result.stderr)
        result = try broker.run(["users", "link-github", "bob", "bad--login"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(try broker.run(["users", "link-github", "alice", "--unlink"]).status, 0)
        XCTAssertEqual(try broker.run(["users", "link-github", "bob", "alice-gh"]).status, 0)
    }

    func testLinkGitHubWithTheNumericID() throws {
        XCTAssertEqual(try broker.run(["users", "add", "alice", "--no-password"]).status, 0)
        XCTAssertEqual(try broker.run(["users", "add", "bob", "--no-password"]).status, 0)
        var result = try broker.run(["users", "link-github", "alice", "Alice-GH", "--github-id", "583231"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("583231"), result.stdout)
        result = try broker.run(["users", "list"])
        XCTAssertTrue(result.stdout.contains("GITHUB_ID"), result.stdout)
        XCTAssertTrue(result.stdout.contains("583231"), result.stdout)
        result = try broker.run(["users", "link-github", "bob", "bob-gh", "--github-id", "583231"])
        XCTAssertEqual(result.status, 1, "one GitHub user, one account")
        XCTAssertTrue(result.stderr.contains("GitHub user id 583231 is linked to another account"), result.stderr)
        for bad in ["0", "-5", "twelve"] {
            result = try broker.run(["users", "link-github", "bob", "bob-gh", "--github-id", bad])
            XCTAssertNotEqual(result.status, 0, bad)
        }
        result = try broker.run(["users", "link-github", "alice", "--unlink", "--github-id", "583231"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(try broker.run(["users", "link-github", "alice", "--unlink"]).status, 0)
        XCTAssertFalse(try broker.run(["users", "list"]).stdout.contains("583231"), "unlinking forgets the id")
    }

    func testDjangoImport() throws {
        let dump = """
            [
             {"model":"auth.user","pk":1,"fields":{"username":"ann","password":"pbkdf2_sha256$600000$abcdefgh$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","is_active":true,"email":"a@x"}},
             {"model":"auth.user","pk":2,"fields":{"username":"ben","password":"pbkdf2_sha256$260000$salt$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","is_active":false}},
             {"model":"auth.user","pk":3,"fields":{"username":"bad user","password":"pbkdf2_sha256$1$s$AAAA","is_active":true}},
             {"model":"auth.user","pk":4,"fields":{"username":"cat","password":"md5$whatever","is_active":true}},
             {"model":"auth.user","pk":5,"fields":{"username":"ann","password":"!unusable","is_active":true}}
            ]
            """
        let file = broker.workDirectory.appendingPathComponent("users.json")
        try dump.write(to: file, atomically: true, encoding: .utf8)
        XCTAssertEqual(try broker.run(["users", "add", "ben", "--no-password"]).status, 0)
        let result = try broker.run(["users", "import", file.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("imported 1, skipped 2, rejected 2"), result.stdout)
        XCTAssertTrue(result.stdout.contains("skipped ben"), result.stdout)
        XCTAssertTrue(result.stdout.contains("rejected cat: unsupported password hash format"), result.stdout)
        XCTAssertFalse(result.stdout.contains("AAAAAAAA"), "hashes are never printed")

        try "[{\"model\":\"auth.user\",\"pk\":1,\"fields\":{\"username\":\"dan\"}}, 42]".write(to: file, atomically: true, encoding: .utf8)
        let malformed = try broker.run(["users", "import", file.path])
        XCTAssertEqual(malformed.status, 1)
        XCTAssertTrue(malformed.stderr.contains("nothing was imported"), malformed.stderr)
        XCTAssertFalse(try broker.run(["users", "list"]).stdout.contains("dan"), "a malformed file changes nothing")
    }

    func testKeysListAndTokenVerify() throws {
        var result = try broker.run(["keys", "list"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.contains("no key ring"), result.stdout)
        // Serving once creates the ring; then log in through the real server.
        XCTAssertEqual(try broker.run(["users", "add", "alice", "--password-stdin"], stdin: "correct horse battery staple\n").status, 0)
        XCTAssertEqual(try broker.run(["orgs", "add", "org1"]).status, 0)
        XCTAssertEqual(try broker.run(["members", "add", "org1", "alice"]).status, 0)
        let (server, port) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }
        let token = try Self.login(port: port)

        result = try broker.run(["keys", "list"])
        XCTAssertEqual(result.stdout.components(separatedBy: "\n").filter { $0.hasPrefix("active") }.count, 1, result.stdout)
        XCTAssertEqual(result.stdout.components(separatedBy: "\n").filter { $0.hasPrefix("next") }.count, 1, result.stdout)

        result = try broker.run(["token", "verify", token, "--audience", "org1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("\"user_name\" : \"alice\""), result.stdout)
        result = try broker.run(["token", "verify", token, "--audience", "org2"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("audience"), result.stderr)
        result = try broker.run(["token", "verify", token, "--issuer", "https://other.example"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("issuer"), result.stderr)
        result = try broker.run(["token", "verify", "eyJhbGciOiJub25lIn0.e30."])
        XCTAssertEqual(result.status, 1)
    }

    func testKeysRotateAndRetireWhileTheServerRuns() throws {
        let (server, port) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }
        let before = try Self.jwksKids(port: port)
        XCTAssertEqual(before.count, 2)
        var result = try broker.run(["keys", "rotate"])
        XCTAssertEqual(result.status, 1, "the next key is younger than key_prepublication")
        XCTAssertTrue(result.stderr.contains("--force"), result.stderr)
        result = try broker.run(["keys", "rotate", "--force"])
        XCTAssertEqual(result.status, 0, result.stderr)
        // The running server notices within key_reload_interval (2 s) and publishes all three.
        var after: [String] = []
        for _ in 0..<50 where after.count != 3 {
            Thread.sleep(forTimeInterval: 0.2)
            after = try Self.jwksKids(port: port)
        }
        XCTAssertEqual(after.count, 3, "next, active, retired")
        XCTAssertTrue(Set(before).isSubset(of: Set(after)))
        let listed = try broker.run(["keys", "list"]).stdout
        XCTAssertTrue(listed.contains("retired") && listed.contains("RETIRES-AT"), listed)
        let unconfirmed = try broker.run(["keys", "retire", "--", before[0]])
        XCTAssertEqual(unconfirmed.status, 1)
        XCTAssertTrue(unconfirmed.stderr.contains("--now"), unconfirmed.stderr)
        result = try broker.run(["keys", "retire", "--now", "--", before[0]])
        XCTAssertEqual(result.status, 0, result.stderr)
        var withdrawn = after
        for _ in 0..<50 where withdrawn.contains(before[0]) {
            Thread.sleep(forTimeInterval: 0.2)
            withdrawn = try Self.jwksKids(port: port)
        }
        XCTAssertFalse(withdrawn.contains(before[0]))
        // One kid in 64 begins with "-": after `--` it is read as a kid (here an unknown one),
        // not as an option, which left the argument missing (exit 64, usage).
        let dashed = try broker.run(["keys", "retire", "--now", "--", "-" + before[0].dropFirst()])
        XCTAssertEqual(dashed.status, 1, dashed.stderr)
        XCTAssertFalse(dashed.stderr.contains("Missing expected argument"), dashed.stderr)
    }

    /// Nothing the broker needs sits beside its binary: the binary alone, elsewhere (as the
    /// container image installs it), starts and serves its contract, which is compiled in. With
    /// the contract in a resource bundle beside the binary, such a broker stopped at start.
    func testTheBinaryAloneStartsAndServesItsContract() async throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        let alone = broker.workDirectory.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: alone, withIntermediateDirectories: true)
        let binary = alone.appendingPathComponent("broker")
        try FileManager.default.linkItem(at: try BrokerBinary.executable, to: binary)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: alone.path), ["broker"])
        let (server, port) = try BrokerBinary.startListening(
            ["serve", "--port", "0"], environment: broker.environment, directory: broker.workDirectory, executable: binary)
        defer { server.terminate(); server.waitUntilExit() }
        let served = try await RealGateway.get("http://127.0.0.1:\(port)/openapi.yaml", token: nil)
        XCTAssertEqual(served.status, 200)
        XCTAssertEqual(served.text, try String(contentsOf: OpenAPIContract.canonicalFile, encoding: .utf8))
        // Here a bundle would still be found (SwiftPM's accessor falls back to the build
        // directory, which an image does not have): the manifest must declare none.
        let manifest = try String(contentsOf: OpenAPIContract.repositoryRoot.appendingPathComponent("Package.swift"), encoding: .utf8)
        XCTAssertFalse(
            manifest.contains(".copy(") || manifest.contains(".process("),
            "a resource bundle must sit beside the binary: compile resources in with .embedInCode")
    }

    /// The kids of the live JWKS, fetched with Python's urllib (an independent client).
    static func jwksKids(port: Int) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            "import json, sys, urllib.request; print(' '.join(k['kid'] for k in json.load(urllib.request.urlopen(sys.argv[1]))['keys']))",
            "http://127.0.0.1:\(port)/.well-known/jwks.json",
        ]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace).map(String.init)
    }

    func testServeRefusesALooseKeysDirectory() throws {
        let (server, _) = try broker.serve()
        server.terminate()
        server.waitUntilExit()
        chmod(broker.workDirectory.appendingPathComponent("keys").path, 0o755)
        let result = try broker.run(["serve", "--port", "0"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("chmod 700"), result.stderr)
    }

    func testConfigurationErrorsNameTheKeyAndSource() throws {
        var environment = broker.environment
        environment["BROKER_PORT"] = "eighty"
        var result = try BrokerBinary(workDirectory: broker.workDirectory, environment: environment).run(["users", "list"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("BROKER_PORT"), result.stderr)
        let bad = broker.workDirectory.appendingPathComponent("bad.yaml")
        try "acess_lifetime: 60\n".write(to: bad, atomically: true, encoding: .utf8)
        result = try broker.run(["users", "list", "--config", bad.path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("unknown key acess_lifetime"), result.stderr)
    }

    /// Logs in over HTTP with curl-like plain Foundation networking avoided: Python's urllib.
    static func login(port: Int) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            """
            import json, sys, urllib.request
            body = json.dumps({"username": "alice", "password": "correct horse battery staple", "org_name": "org1"}).encode()
            request = urllib.request.Request(sys.argv[1], data=body, headers={"Content-Type": "application/json"})
            print(json.load(urllib.request.urlopen(request))["access"])
            """,
            "http://127.0.0.1:\(port)/api/org_token/",
        ]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
