import BrokerSync
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Faults under load, with real processes (issue 12): a replica killed with SIGKILL while clients
/// refresh, and PostgreSQL stopped and started again under live replicas. What clients were
/// answered is kept in a ledger and checked against the database afterwards.
final class ReplicaFaultProcessTests: XCTestCase {
    // MARK: kill -9

    /// Six clients each rotate their own refresh chain round-robin over two replicas while one
    /// replica is killed with SIGKILL and another started in its place. With the default grace
    /// (`refresh_reuse_grace`, 2 s), a client whose request died with the replica retries its
    /// token at the survivor: it gets a successor (the same one, when the dead replica had
    /// committed). Afterwards the database holds every answered token and no other, each used at
    /// most once, and every chain goes on from its last answered token.
    func testKillingAReplicaUnderRefreshLoadLosesNoAnsweredRefreshAndAcceptsNoTokenTwice() async throws {
        let replicas = try ReplicaSet(extraConfig: "key_reload_interval: 1\nrefresh_throttle_session: 10000")
        defer { replicas.stop() }
        try replicas.seedMember("alice", of: "org1")
        let started = try replicas.start(2)
        let ports = Locked(started)
        let clients = 6
        let rounds = 30
        var firstTokens: [String] = []
        for client in 0..<clients { firstTokens.append(try await ReplicaSet.login(started[client % 2], "alice", "org1").refresh) }

        let answered = Locked(0)
        let ledgers = try await withThrowingTaskGroup(of: RefreshLedger.self) { group in
            for client in 0..<clients {
                let first = firstTokens[client]
                group.addTask {
                    var ledger = RefreshLedger(first: first)
                    for round in 0..<rounds {
                        let current = ports.withLock { $0 }
                        let port = current[(client + round) % current.count]
                        let survivor = current[0]
                        let presented = ledger.last
                        guard let answer = await Self.tryRefresh(port, presented) else {
                            // No answer (the replica died under the request): the same token again,
                            // at once, at the replica that is alive.
                            ledger.unanswered.append(presented)
                            guard let retried = await Self.tryRefresh(survivor, presented) else {
                                XCTFail("client \(client): the surviving replica did not answer")
                                break
                            }
                            ledger.record(presented, retried, afterLostAnswer: true)
                            if retried.status != 200 { break }
                            continue
                        }
                        ledger.record(presented, answer, afterLostAnswer: false)
                        answered.withLock { $0 += 1 }
                        if answer.status != 200 { break }
                    }
                    return ledger
                }
            }
            group.addTask {
                // Kill the second replica once the load is well under way, then start another.
                while answered.withLock({ $0 }) < clients * rounds / 4 { try await Task.sleep(for: .milliseconds(20)) }
                replicas.kill(1)
                ports.withLock { $0 = [started[0]] }
                let replacement = try replicas.start(1)[0]
                ports.withLock { $0 = [started[0], replacement] }
                return RefreshLedger(first: "")
            }
            var ledgers: [RefreshLedger] = []
            for try await ledger in group where !ledger.first.isEmpty { ledgers.append(ledger) }
            return ledgers
        }
        let lost = ledgers.reduce(0) { $0 + $1.unanswered.count }
        print("kill -9 under load: \(ledgers.reduce(0) { $0 + $1.answers.count }) answers, \(lost) requests lost with the replica")

        for (client, ledger) in ledgers.enumerated() {
            // Never two different successors for one presented token.
            XCTAssertTrue(ledger.conflicts.isEmpty, "client \(client): one token answered with two successors: \(ledger.conflicts)")
            let refusals = ledger.answers.filter { $0.status != 200 }
            for refusal in refusals {
                // The only refusal the rule allows: the retry of a token whose answer died with the
                // replica, later than the grace after its use (then it is a reuse, as documented).
                XCTAssertTrue(refusal.afterLostAnswer, "client \(client): refused without a fault: \(refusal.status) \(refusal.error ?? "")")
                XCTAssertEqual(refusal.error, "refresh_token_reused", "client \(client)")
            }
            // The hashes as the database computes them (SHA-256 of the token's text), not the broker.
            let answeredHashes = try Self.sha256Hex(ledger.chain, in: replicas.database)
            let family = try replicas.database.query(
                "SELECT family_id FROM refresh_tokens WHERE token_hash = '\(answeredHashes[0])'")
            XCTAssertFalse(family.isEmpty, "client \(client): the login's token is in the database")
            let rows = try replicas.database.query(
                "SELECT token_hash, used_at IS NOT NULL FROM refresh_tokens WHERE family_id = '\(family)'"
            ).split(separator: "\n").map { $0.split(separator: "|").map(String.init) }
            let stored = Dictionary(uniqueKeysWithValues: rows.map { ($0[0], $0[1] == "t") })
            for (index, hash) in answeredHashes.enumerated() {
                XCTAssertNotNil(stored[hash], "client \(client): answered token #\(index) is in the database")
            }
            // Every stored token was answered, except, at most, the successor a dead replica
            // committed and never delivered when its retry came too late.
            let unanswered = Set(stored.keys).subtracting(answeredHashes)
            XCTAssertLessThanOrEqual(unanswered.count, refusals.isEmpty ? 0 : 1, "client \(client): tokens nobody was answered")
            // Used exactly the tokens that were presented and answered with a successor.
            let used = Set(stored.filter(\.value).keys)
            XCTAssertEqual(used, Set(answeredHashes.dropLast()).union(unanswered.isEmpty ? [] : [answeredHashes.last!]),
                "client \(client): the tokens used in the database are those exchanged")
            guard refusals.isEmpty else { continue }
            // The chain goes on from its last answered token, at both replicas.
            let current = ports.withLock { $0 }
            let next = try await ReplicaSet.refresh(current[0], ledger.last)
            XCTAssertEqual(next.status, 200, "client \(client): the chain goes on: \(next.text)")
            let afterThat = try await ReplicaSet.refresh(current[1], next.body["refresh"] as? String ?? "")
            XCTAssertEqual(afterThat.status, 200, "client \(client): and at the new replica: \(afterThat.text)")
        }
    }

    /// One refresh; nil when the replica gave no answer (killed, refused the connection).
    private static func tryRefresh(_ port: Int, _ token: String) async -> ReplicaSet.Answer? {
        try? await ReplicaSet.refresh(port, token)
    }

    /// The hex SHA-256 of each token (what the broker stores), in order, computed by PostgreSQL.
    /// Tokens are base64url: nothing to quote.
    private static func sha256Hex(_ tokens: [String], in database: TestPostgresDatabase) throws -> [String] {
        precondition(tokens.allSatisfy { $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" } })
        let list = tokens.enumerated().map { "('\($0.element)', \($0.offset))" }.joined(separator: ", ")
        return try database.query(
            "SELECT encode(sha256(convert_to(t, 'UTF8')), 'hex') FROM (VALUES \(list)) AS v(t, i) ORDER BY i"
        ).split(separator: "\n").map(String.init)
    }

    // MARK: PostgreSQL stopped mid-load

    /// PostgreSQL (a server of this test's own) stopped while two replicas serve refreshes:
    /// requests that need it answer 503 `store_unavailable` with `Retry-After`, the first within
    /// about one connect timeout and the following ones at once; the JWKS, the PEM and the
    /// discovery document keep answering from memory; `/readyz` says 503 and `/livez` 200. Started
    /// again on the same port, the replicas serve again by themselves, and no session was lost.
    func testPostgreSQLStoppedMidLoadAnswers503QuicklyAndTheReplicasRecoverWithoutARestart() async throws {
        let server = try OwnPostgresServer()
        defer { server.destroy() }
        let connectTimeout = 2.0
        let replicas = try ReplicaSet(
            extraConfig: "key_reload_interval: 1\nrefresh_throttle_session: 10000\ndatabase_connect_timeout: \(Int(connectTimeout))",
            adminURL: server.adminURL)
        defer { replicas.stop() }
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(2)
        var chains: [String] = []
        for client in 0..<4 { chains.append(try await ReplicaSet.login(ports[client % 2], "alice", "org1").refresh) }

        let running = Locked(true)
        let load = Task { () -> [TimedAnswer] in
            try await withThrowingTaskGroup(of: [TimedAnswer].self) { group in
                for (client, first) in chains.enumerated() {
                    group.addTask {
                        var token = first
                        var answers: [TimedAnswer] = []
                        var round = 0
                        while running.withLock({ $0 }) {
                            round += 1
                            let start = Date()
                            let answer: ReplicaSet.Answer
                            do {
                                answer = try await ReplicaSet.refresh(ports[(client + round) % 2], token)
                            } catch {
                                answer = ReplicaSet.Answer(status: 0, body: [:], text: "no answer: \(error)")
                            }
                            answers.append(TimedAnswer(start: start, seconds: Date().timeIntervalSince(start), answer: answer))
                            if answer.status == 200, let next = answer.body["refresh"] as? String { token = next }
                            if answer.status != 200 && answer.status != 503 { break }
                            if answer.status == 503 { try await Task.sleep(for: .milliseconds(50)) }
                        }
                        return answers
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        }
        try await Task.sleep(for: .milliseconds(500))

        let stopping = Date()
        try server.stop()
        let stopped = Date()
        // Each replica's first answers while the database is down, then more of them.
        var outage: [[TimedAnswer]] = [[], []]
        for (index, port) in ports.enumerated() {
            for _ in 0..<6 {
                let start = Date()
                let answer = try await ReplicaSet.call(
                    "POST", port, "/api/org_token/",
                    json: #"{"username":"alice","password":"\#(ReplicaSet.password)","org_name":"org1"}"#)
                outage[index].append(TimedAnswer(start: start, seconds: Date().timeIntervalSince(start), answer: answer))
            }
        }
        for (index, answers) in outage.enumerated() {
            for timed in answers {
                XCTAssertEqual(timed.answer.status, 503, "replica \(index): \(timed.answer.text)")
                XCTAssertEqual(timed.answer.error, "store_unavailable", "replica \(index)")
                XCTAssertEqual(timed.answer.retryAfter, "5", "replica \(index)")
                XCTAssertLessThan(timed.seconds, connectTimeout + 1.5, "replica \(index): bounded by one connect timeout")
            }
            let durations = answers.map(\.seconds).sorted()
            XCTAssertLessThan(durations[durations.count / 2], 0.5, "replica \(index): once found down, 503 at once: \(durations)")
            print("database down, replica \(index): 503 after \(durations.map { String(format: "%.3f", $0) }) s")
        }
        for port in ports {
            for path in ["/.well-known/jwks.json", "/auth/pem", "/.well-known/openid-configuration", "/livez"] {
                let answer = try await ReplicaSet.call("GET", port, path)
                XCTAssertEqual(answer.status, 200, "\(path) while the database is down: \(answer.text)")
            }
            let ready = try await ReplicaSet.call("GET", port, "/readyz")
            XCTAssertEqual(ready.status, 503, "/readyz while the database is down: \(ready.text)")
        }

        try server.start()
        let restarted = Date()
        var recovered: [Double] = []
        for port in ports {
            var ready = false
            while !ready && Date().timeIntervalSince(restarted) < 20 {
                let readiness = try await ReplicaSet.call("GET", port, "/readyz")
                ready = readiness.status == 200
                if !ready { try await Task.sleep(for: .milliseconds(100)) }
            }
            recovered.append(Date().timeIntervalSince(restarted))
            XCTAssertTrue(ready, "/readyz at \(port) after the database came back")
            let login = try await ReplicaSet.call(
                "POST", port, "/api/org_token/",
                json: #"{"username":"alice","password":"\#(ReplicaSet.password)","org_name":"org1"}"#)
            XCTAssertEqual(login.status, 200, "a login without restarting the replica: \(login.text)")
        }
        print("database stopped in \(String(format: "%.2f", stopped.timeIntervalSince(stopping))) s; replicas ready again after \(recovered.map { String(format: "%.2f", $0) }) s")
        XCTAssertLessThan(recovered.max() ?? 99, 10, "every replica serves again within 10 s of the database's return")

        // Let the load see the database back, then check what it was answered.
        let loadSeesItBack = Date()
        try await Task.sleep(for: .seconds(1))
        running.withLock { $0 = false }
        let answers = try await load.value
        for timed in answers {
            XCTAssertTrue(
                timed.answer.status == 200 || (timed.answer.status == 503 && timed.answer.error == "store_unavailable"),
                "under load, only successes and 503 store_unavailable: \(timed.answer.status) \(timed.answer.text), "
                    + "sent \(timed.start.timeIntervalSince(stopping)) s after the stop began, took \(timed.seconds) s")
            if timed.answer.status == 503 { XCTAssertEqual(timed.answer.retryAfter, "5") }
            if timed.start >= stopped { XCTAssertLessThan(timed.seconds, connectTimeout + 1.5, "a request under load while down") }
            // In flight when the database stopped: at most the statement timeout (5 s) and the
            // client-side deadline's 2 s.
            XCTAssertLessThan(timed.seconds, 7.5, "no request hangs")
        }
        XCTAssertTrue(answers.contains { $0.answer.status == 200 && $0.start > loadSeesItBack }, "the load's refreshes succeed again")
        print("under load: \(answers.count) answers, the slowest in \(String(format: "%.3f", answers.map(\.seconds).max() ?? 0)) s")
        if (testRun?.failureCount ?? 0) > 0 {
            for index in 0..<2 {
                let lines = replicas.log(index).split(separator: "\n").filter { !$0.contains(" info ") }
                print("replica \(index):\n" + lines.suffix(30).joined(separator: "\n"))
            }
        }
    }

    // MARK: PostgreSQL down for long

    /// PostgreSQL stopped for 23 s under two replicas, then started again. A connection pool that
    /// kept failing backs its attempts off 1.25 times longer each time (100 ms at first; after
    /// 23 s about 6 s apart), so a replica waiting for its pool could stay unready for seconds
    /// after the database's return. Every replica must be ready (`/readyz` 200) within 3 s of it
    /// instead, and serve a login right after: the down verdict's probe (one a second) connects
    /// directly and replaces a pool that has not reconnected (one warning in the log).
    func testAfterALongOutageEveryReplicaServesAgainWithinThreeSecondsOfPostgreSQLsReturn() async throws {
        let server = try OwnPostgresServer()
        defer { server.destroy() }
        let replicas = try ReplicaSet(
            extraConfig: "key_reload_interval: 1\ndatabase_connect_timeout: 2", adminURL: server.adminURL)
        defer { replicas.stop() }
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(2)
        for port in ports { _ = try await ReplicaSet.login(port, "alice", "org1") }

        try server.stop()
        let stopped = ContinuousClock.now
        for port in ports {
            let ready = try await ReplicaSet.call("GET", port, "/readyz")
            XCTAssertEqual(ready.status, 503, "/readyz while the database is down: \(ready.text)")
        }
        // Down long enough for the pools' backoff to grow to seconds (each replica reloads its
        // keys every second meanwhile, so each holds the down verdict).
        try await Task.sleep(until: stopped.advanced(by: .seconds(23)), clock: .continuous)
        try server.start()
        let restarted = Date()

        typealias Recovery = (index: Int, ready: Double, login: Double, status: Int, text: String)
        let recoveries = try await withThrowingTaskGroup(of: Recovery.self) { group in
            for (index, port) in ports.enumerated() {
                group.addTask {
                    var ready = false
                    while !ready && Date().timeIntervalSince(restarted) < 15 {
                        ready = try await ReplicaSet.call("GET", port, "/readyz").status == 200
                        if !ready { try await Task.sleep(for: .milliseconds(50)) }
                    }
                    let readyAfter = Date().timeIntervalSince(restarted)
                    let login = try await ReplicaSet.call(
                        "POST", port, "/api/org_token/",
                        json: #"{"username":"alice","password":"\#(ReplicaSet.password)","org_name":"org1"}"#)
                    return (index, readyAfter, Date().timeIntervalSince(restarted), login.status, login.text)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }.sorted { $0.index < $1.index }
        }
        print(
            "database down 23 s; after its return, replicas ready in "
                + recoveries.map { String(format: "%.2f", $0.ready) }.joined(separator: ", ")
                + " s, logins answered in " + recoveries.map { String(format: "%.2f", $0.login) }.joined(separator: ", ") + " s")
        for recovery in recoveries {
            XCTAssertEqual(recovery.status, 200, "replica \(recovery.index): a login after the outage: \(recovery.text)")
            // The acceptance bar: one probe interval (1 s) and a connect, with room for a loaded machine.
            XCTAssertLessThan(recovery.ready, 3, "replica \(recovery.index): /readyz 200 within 3 s of the database's return")
            XCTAssertLessThan(recovery.login, 3.5, "replica \(recovery.index): a login served within 3.5 s of the database's return")
            let replaced = replicas.log(recovery.index).split(separator: "\n").filter { $0.contains("connection pool replaced") }
            XCTAssertFalse(replaced.isEmpty, "replica \(recovery.index): the probe replaced the pool, with a warning")
            if let password = URLComponents(string: replicas.database.url)?.password, !password.isEmpty {
                XCTAssertFalse(replicas.log(recovery.index).contains(password), "replica \(recovery.index): the database password logged")
            }
        }
        if (testRun?.failureCount ?? 0) > 0 {
            for index in 0..<2 {
                let lines = replicas.log(index).split(separator: "\n").filter { !$0.contains(" info ") }
                print("replica \(index):\n" + lines.suffix(30).joined(separator: "\n"))
            }
        }
    }
}

/// What one client presented and was answered, in order.
struct RefreshLedger: Sendable {
    struct Entry: Sendable {
        var presented: String
        var status: Int
        var successor: String?
        var error: String?
        var afterLostAnswer: Bool
    }

    let first: String
    /// The login's token and every successor answered since, in order.
    private(set) var chain: [String]
    private(set) var answers: [Entry] = []
    /// Tokens whose request got no answer (the replica died).
    var unanswered: [String] = []
    /// Tokens answered with two different successors (must stay empty).
    private(set) var conflicts: [String] = []

    init(first: String) {
        self.first = first
        chain = [first]
    }

    var last: String { chain.last ?? first }

    mutating func record(_ presented: String, _ answer: ReplicaSet.Answer, afterLostAnswer: Bool) {
        let successor = answer.status == 200 ? answer.body["refresh"] as? String : nil
        if let successor, let earlier = answers.first(where: { $0.presented == presented && $0.successor != nil }),
            earlier.successor != successor
        {
            conflicts.append(presented)
        }
        answers.append(
            Entry(presented: presented, status: answer.status, successor: successor, error: answer.error, afterLostAnswer: afterLostAnswer))
        if let successor { chain.append(successor) }
    }
}

struct TimedAnswer: @unchecked Sendable {
    var start: Date
    var seconds: Double
    var answer: ReplicaSet.Answer
}

/// A PostgreSQL server of one test's own (scripts/postgres-test-server.sh in a temporary
/// directory), which the test may stop and start again on the same port and data directory;
/// the server the other tests share is never touched. Skips without `BROKER_TEST_POSTGRES_URL`
/// (the sign that PostgreSQL is installed for the tests).
final class OwnPostgresServer: @unchecked Sendable {
    private let parent: URL
    private let directory: URL
    private(set) var adminURL = ""

    static var script: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/postgres-test-server.sh")
    }

    init() throws {
        guard let shared = ProcessInfo.processInfo.environment[TestPostgresDatabase.adminURLVariable], !shared.isEmpty else {
            throw XCTSkip("no PostgreSQL for this test: run `make test`, or export \(TestPostgresDatabase.adminURLVariable)")
        }
        parent = FileManager.default.temporaryDirectory.appendingPathComponent("broker-own-pg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        directory = parent.appendingPathComponent("pg")
        try start()
    }

    func start() throws { adminURL = try run("start") }

    func stop() throws { _ = try run("stop") }

    func destroy() {
        _ = try? stop()
        try? FileManager.default.removeItem(at: parent)
    }

    /// Runs the script with `system` (which waits for its own child): `Process.waitUntilExit`
    /// was seen waiting forever for a script that had started a server.
    private func run(_ action: String) throws -> String {
        let output = parent.appendingPathComponent("\(action).out")
        let errors = parent.appendingPathComponent("\(action).err")
        let command = ["/bin/bash", Self.script.path, action, directory.path].map { "'\($0)'" }.joined(separator: " ")
        let status = system("\(command) >'\(output.path)' 2>'\(errors.path)' </dev/null")
        guard status == 0 else {
            let message = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
            throw XCTSkip("postgres-test-server.sh \(action) failed (\(status)): \(message)")
        }
        return ((try? String(contentsOf: output, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
