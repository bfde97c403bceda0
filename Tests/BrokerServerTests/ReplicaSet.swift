import Foundation
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A database of its own on the throwaway PostgreSQL server `make test` starts
/// (scripts/postgres-test-server.sh), made with `psql` so that the tests depend on no code of the
/// broker to set it up. Skips the test when no server is configured.
struct TestPostgresDatabase {
    /// The URL replicas connect with (the admin URL with this database's name).
    let url: String
    private let adminURL: String
    private let name: String

    static let adminURLVariable = "BROKER_TEST_POSTGRES_URL"

    /// A new database on the server of `adminURL`, by default the shared test server.
    static func make(adminURL: String? = nil) throws -> TestPostgresDatabase {
        guard let adminURL = adminURL ?? ProcessInfo.processInfo.environment[adminURLVariable], !adminURL.isEmpty else {
            throw XCTSkip(
                "no PostgreSQL for this test: run `make test`, or export \(adminURLVariable)=$(scripts/postgres-test-server.sh start DIR)")
        }
        let name = "broker_replicas_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        try psql(adminURL, "CREATE DATABASE \(name)")
        guard let slash = adminURL.range(of: "/", options: .backwards) else {
            throw XCTSkip("\(adminURLVariable) has no database path: \(adminURL.prefix(12))…")
        }
        var url = String(adminURL[..<slash.upperBound]) + name
        if let query = adminURL.range(of: "?") { url += adminURL[query.lowerBound...] }
        return TestPostgresDatabase(url: url, adminURL: adminURL, name: name)
    }

    func drop() {
        _ = try? Self.psql(adminURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Runs one SQL statement on this database and returns its unaligned, tuples-only output.
    @discardableResult
    func query(_ sql: String) throws -> String { try Self.psql(url, sql) }

    @discardableResult
    private static func psql(_ url: String, _ sql: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw XCTSkip("psql failed (\(process.terminationStatus)): \(String(decoding: errors, as: UTF8.self))")
        }
        return String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Several `broker serve` processes on one PostgreSQL database: replicas that share nothing but
/// the database (each its own empty data and keys directory) and the key-encryption key, as
/// docs/deployment.md deploys them.
final class ReplicaSet: @unchecked Sendable {
    struct Replica {
        let broker: BrokerBinary
        let process: Process
        let port: Int
    }

    let database: TestPostgresDatabase
    let keyEncryptionKeyFile: URL
    private(set) var replicas: [Replica] = []
    private let extraConfig: String
    private let scratch: URL

    static let password = "correct horse battery staple"

    /// `adminURL`: another PostgreSQL server than the shared one (a fault test stopping it).
    init(extraConfig: String = "", adminURL: String? = nil) throws {
        database = try TestPostgresDatabase.make(adminURL: adminURL)
        self.extraConfig = extraConfig
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("broker-replicas-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        keyEncryptionKeyFile = scratch.appendingPathComponent("kek")
        let kek = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() + "\n"
        _ = FileManager.default.createFile(
            atPath: keyEncryptionKeyFile.path, contents: Data(kek.utf8), attributes: [.posixPermissions: 0o600])
    }

    /// Replaces the key-encryption key file with a new random key (a lost or replaced KEK).
    func replaceKeyEncryptionKey() throws {
        let kek = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() + "\n"
        try FileManager.default.removeItem(at: keyEncryptionKeyFile)
        _ = FileManager.default.createFile(
            atPath: keyEncryptionKeyFile.path, contents: Data(kek.utf8), attributes: [.posixPermissions: 0o600])
    }

    /// Stops every replica started so far.
    func stopReplicas() {
        for replica in replicas where replica.process.isRunning {
            replica.process.terminate()
            replica.process.waitUntilExit()
        }
    }

    /// A broker binary of this set: its own directories, this database and KEK.
    func binary() throws -> BrokerBinary {
        var broker = try BrokerBinary.make(extraConfig: extraConfig)
        broker.environment["BROKER_DATABASE_URL"] = database.url
        broker.environment["BROKER_KEY_ENCRYPTION_KEY_FILE"] = keyEncryptionKeyFile.path
        return broker
    }

    /// Starts `count` replicas one after another (each on a free port) and returns their ports.
    @discardableResult
    func start(_ count: Int) throws -> [Int] {
        for _ in 0..<count {
            let broker = try binary()
            let log = broker.workDirectory.appendingPathComponent("serve.log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let (process, port) = try broker.serve(standardError: FileHandle(forWritingAtPath: log.path))
            replicas.append(Replica(broker: broker, process: process, port: port))
        }
        return replicas.suffix(count).map(\.port)
    }

    /// Runs a CLI command against the shared database (as an operator on some other machine).
    @discardableResult
    func cli(_ arguments: [String], stdin: String? = nil) throws -> BrokerBinary.Result {
        let broker = try binary()
        defer { broker.cleanUp() }
        return try broker.run(arguments, stdin: stdin)
    }

    /// An organization `org` with the member `username` (password ``password``).
    func seedMember(_ username: String, of organization: String) throws {
        var result = try cli(["users", "add", username, "--password-stdin"], stdin: Self.password + "\n")
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try cli(["orgs", "add", organization])
        XCTAssertTrue(result.status == 0 || result.stderr.contains("exists"), result.stderr)
        result = try cli(["members", "add", organization, username])
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    /// What replica `index` wrote to its standard error.
    func log(_ index: Int) -> String {
        (try? String(contentsOf: replicas[index].broker.workDirectory.appendingPathComponent("serve.log"), encoding: .utf8)) ?? ""
    }

    func kill(_ index: Int, signal: Int32 = SIGKILL) {
        let process = replicas[index].process
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, signal)
        process.waitUntilExit()
    }

    func stop() {
        for replica in replicas where replica.process.isRunning {
            replica.process.terminate()
            // A replica that does not finish its graceful stop in time is killed, as a supervisor would.
            let deadline = Date().addingTimeInterval(15)
            while replica.process.isRunning && Date() < deadline { usleep(50_000) }
            if replica.process.isRunning { Foundation.kill(replica.process.processIdentifier, SIGKILL) }
            replica.process.waitUntilExit()
        }
        for replica in replicas { replica.broker.cleanUp() }
        database.drop()
        try? FileManager.default.removeItem(at: scratch)
    }

    // MARK: HTTP

    struct Answer {
        var status: Int
        var body: [String: Any]
        var text: String
        var retryAfter: String? = nil
        var error: String? { body["error"] as? String ?? body["code"] as? String }
    }

    static func call(
        _ method: String, _ port: Int, _ path: String, json: String? = nil, bearer: String? = nil
    ) async throws -> Answer {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.timeoutInterval = 30
        if let json {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(json.utf8)
        }
        if let bearer { request.setValue("Bearer \(bearer)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let body = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        let http = response as! HTTPURLResponse
        return Answer(
            status: http.statusCode, body: body, text: String(decoding: data, as: UTF8.self),
            retryAfter: http.value(forHTTPHeaderField: "Retry-After"))
    }

    /// A generation-1 login at `port`: (access, refresh).
    static func login(_ port: Int, _ username: String, _ organization: String) async throws -> (access: String, refresh: String) {
        let answer = try await call(
            "POST", port, "/api/org_token/",
            json: #"{"username":"\#(username)","password":"\#(password)","org_name":"\#(organization)"}"#)
        XCTAssertEqual(answer.status, 200, answer.text)
        return (answer.body["access"] as? String ?? "", answer.body["refresh"] as? String ?? "")
    }

    static func refresh(_ port: Int, _ token: String) async throws -> Answer {
        try await call("POST", port, "/api/org_token/refresh/", json: #"{"refresh":"\#(token)"}"#)
    }

    /// The same refresh token presented at two replicas at the same moment.
    static func refreshAtOnce(at first: Int, and second: Int, _ token: String) async throws -> [Answer] {
        async let atFirst = refresh(first, token)
        async let atSecond = refresh(second, token)
        return try await [atFirst, atSecond]
    }
}
