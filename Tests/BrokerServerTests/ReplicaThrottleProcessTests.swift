import FakeGitHub
import Foundation
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Throttles and revocations across real `broker serve` replicas on one PostgreSQL database
/// (issue 12): failed logins spread over replicas are throttled as one, and a revocation made at
/// one replica is refused by all.
final class ReplicaThrottleProcessTests: XCTestCase {
    private var replicas: ReplicaSet?

    override func tearDown() async throws {
        replicas?.stop()
    }

    /// One answer with its `Retry-After`.
    struct Answer {
        var status: Int
        var error: String?
        var retryAfter: Int?
        var text: String
    }

    static func post(_ port: Int, _ path: String, json: String) async throws -> Answer {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = "POST"
        request.timeoutInterval = 30
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(json.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        let body = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return Answer(
            status: http.statusCode, error: body["error"] as? String ?? body["code"] as? String,
            retryAfter: http.value(forHTTPHeaderField: "Retry-After").flatMap { Int($0) },
            text: String(decoding: data, as: UTF8.self))
    }

    /// Wrong passwords round-robin over three replicas: refused at the same total as one replica
    /// would refuse them (`login_throttle_user_ip` = 4), at every replica, with `Retry-After`;
    /// and no password is evaluated past the limit (the right one is refused too).
    func testFailedLoginsSpreadOverReplicasAreThrottledAsOne() async throws {
        let replicas = try ReplicaSet(extraConfig: "login_throttle_user_ip: 4\nlogin_throttle_window: 600")
        self.replicas = replicas
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(3)
        let wrong = #"{"username":"alice","password":"wrong password","org_name":"org1"}"#
        for attempt in 0..<4 {
            let answer = try await Self.post(ports[attempt % 3], "/api/org_token/", json: wrong)
            XCTAssertEqual(answer.status, 401, "failure \(attempt + 1) of 4: \(answer.text)")
        }
        for port in ports {
            let answer = try await Self.post(port, "/api/org_token/", json: wrong)
            XCTAssertEqual(answer.status, 429, "the fifth failure in all, whichever replica: \(answer.text)")
            XCTAssertEqual(answer.error, "too_many_attempts", answer.text)
            XCTAssertGreaterThan(answer.retryAfter ?? 0, 500, "until the first failure leaves the 600 s window")
        }
        let right = try await Self.post(
            ports[1], "/api/org_token/", json: #"{"username":"alice","password":"\#(ReplicaSet.password)","org_name":"org1"}"#)
        // The answer's error code only: a 200 would carry tokens.
        XCTAssertEqual(right.status, 429, "throttled before the password is looked at: \(right.error ?? "no error")")
        let stored = try replicas.database.query("SELECT COUNT(*) FROM throttle_times WHERE counter = 'login.user_ip'")
        XCTAssertEqual(stored, "4", "one row per failure, the username and address only as digests")
        let clear = try replicas.database.query("SELECT COUNT(*) FROM throttle_times WHERE subject LIKE '%alice%'")
        XCTAssertEqual(clear, "0")
    }

    /// Wrong passwords sent to three replicas at the same instant: exactly `login_throttle_user_ip`
    /// of them are evaluated (401), every other one is refused (429), because an attempt holds
    /// its place in the store's counters while its password is checked. Right passwords of
    /// another account, sent at once over the same replicas, all get in: places held by attempts
    /// in flight are waited for, not counted as failures.
    func testSimultaneousLoginsAtThreeReplicasStayExactlyWithinTheLimit() async throws {
        let replicas = try ReplicaSet(extraConfig: "login_throttle_user_ip: 4\nlogin_throttle_window: 600")
        self.replicas = replicas
        try replicas.seedMember("alice", of: "org1")
        try replicas.seedMember("bob", of: "org1")
        let ports = try replicas.start(3)
        let wrong = #"{"username":"alice","password":"wrong password","org_name":"org1"}"#
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for attempt in 0..<24 {
                group.addTask { try await Self.post(ports[attempt % 3], "/api/org_token/", json: wrong).status }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        XCTAssertEqual(statuses.filter { $0 == 401 }.count, 4, "evaluated: \(statuses.sorted())")
        XCTAssertEqual(statuses.filter { $0 == 429 }.count, 20, "refused: \(statuses.sorted())")
        let stored = try replicas.database.query("SELECT COUNT(*) FROM throttle_times WHERE counter = 'login.user_ip'")
        XCTAssertEqual(stored, "4", "one row per failure, no place left held")

        let right = #"{"username":"bob","password":"\#(ReplicaSet.password)","org_name":"org1"}"#
        let logins = try await withThrowingTaskGroup(of: Answer.self) { group in
            for attempt in 0..<9 {
                group.addTask { try await Self.post(ports[attempt % 3], "/api/org_token/", json: right) }
            }
            return try await group.reduce(into: [Answer]()) { $0.append($1) }
        }
        // The error codes only: a 200 carries tokens.
        XCTAssertEqual(logins.map(\.status), Array(repeating: 200, count: 9), "\(logins.map { $0.error ?? "ok" })")
        let held = try replicas.database.query("SELECT COUNT(*) FROM throttle_times WHERE held_until IS NOT NULL")
        XCTAssertEqual(held, "0", "every place was settled")
    }

    /// A session renewed round-robin over three replicas: `refresh_throttle_session` counts its
    /// renewals together (4 a minute: the SlideRule cadence's floor at the default lifetime).
    func testRenewalsOfOneSessionSpreadOverReplicasAreThrottledAsOne() async throws {
        let replicas = try ReplicaSet(extraConfig: "refresh_throttle_session: 1\nrefresh_throttle_window: 60")
        self.replicas = replicas
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(3)
        var refresh = try await ReplicaSet.login(ports[0], "alice", "org1").refresh
        for renewal in 0..<4 {
            let answer = try await ReplicaSet.refresh(ports[renewal % 3], refresh)
            XCTAssertEqual(answer.status, 200, "renewal \(renewal + 1) of 4: \(answer.error ?? "")")
            refresh = answer.body["refresh"] as? String ?? ""
        }
        for port in ports {
            let answer = try await ReplicaSet.refresh(port, refresh)
            XCTAssertEqual(answer.status, 429, "the fifth renewal in a minute, whichever replica: \(answer.error ?? "")")
            XCTAssertEqual(answer.error, "too_many_attempts")
        }
    }

    /// GitHub logins from one address round-robin over two replicas: `github_login_throttle_ip`
    /// counts them all together.
    func testGitHubLoginsSpreadOverReplicasAreThrottledAsOne() async throws {
        let github = try await FakeGitHub.start()
        do {
            github.addUser(login: "carol", id: 30, token: "ghp_carol")
            let replicas = try ReplicaSet(
                extraConfig: """
                    github_api_url: "\(github.apiURL)"
                    github_web_url: "\(github.webURL)"
                    github_login_throttle_ip: 3
                    github_login_throttle_window: 600
                    """)
            self.replicas = replicas
            let ports = try replicas.start(2)
            for attempt in 0..<3 {
                let answer = try await Self.post(ports[attempt % 2], "/auth/github/pat", json: #"{"pat":"ghp_carol"}"#)
                XCTAssertNotEqual(answer.status, 429, "attempt \(attempt + 1) of 3: \(answer.text)")
                XCTAssertLessThan(answer.status, 500, answer.text)
            }
            for port in ports {
                let answer = try await Self.post(port, "/auth/github/pat", json: #"{"pat":"ghp_carol"}"#)
                XCTAssertEqual(answer.status, 429, "the fourth in all: \(answer.text)")
                XCTAssertEqual(answer.error, "too_many_attempts", answer.text)
                XCTAssertNotNil(answer.retryAfter, answer.text)
            }
        } catch {
            await github.stop()
            throw error
        }
        await github.stop()
    }

    /// An access token revoked at one replica (`/oauth/revoke`) is refused by every other one at
    /// once: revocations are rows in the database, read by each request, cached nowhere.
    func testAnAccessTokenRevokedAtOneReplicaIsRefusedByAll() async throws {
        let replicas = try ReplicaSet()
        self.replicas = replicas
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(3)
        let tokens = try await ReplicaSet.login(ports[0], "alice", "org1")
        let kept = try await ReplicaSet.login(ports[0], "alice", "org1")
        // Every replica has accepted it (anything cached would be warm now).
        for port in ports {
            let status = try await ReplicaSet.call("GET", port, "/api/membership_status/org1/", bearer: tokens.access)
            XCTAssertEqual(status.status, 200, status.text)
        }
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(ports[1])/oauth/revoke")!)
        request.httpMethod = "POST"
        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data("token=\(tokens.access)&token_type_hint=access_token".utf8)
        let (_, response) = try await URLSession.shared.data(for: request)
        XCTAssertEqual((response as! HTTPURLResponse).statusCode, 200)
        for port in [ports[0], ports[2], ports[1]] {
            let refused = try await ReplicaSet.call("GET", port, "/api/membership_status/org1/", bearer: tokens.access)
            XCTAssertEqual(refused.status, 401, "replica at \(port): \(refused.text)")
            let other = try await ReplicaSet.call("GET", port, "/api/membership_status/org1/", bearer: kept.access)
            XCTAssertEqual(other.status, 200, "only that token: \(other.text)")
        }
    }
}
