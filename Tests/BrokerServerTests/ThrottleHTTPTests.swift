import BrokerCore
import BrokerCrypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Brute-force protection of `POST /api/org_token/` over a real loopback socket: 429 with
/// `Retry-After` over a limit, no password evaluated while throttled, and the reset once the
/// window has passed.
final class ThrottleHTTPTests: XCTestCase {
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
    static let wrongPassword = "Tr0ub4dor&3-wrong-guess"

    static func login(_ username: String, _ password: String) -> String {
        #"{"username":"\#(username)","password":"\#(password)","org_name":"org1"}"#
    }

    /// The status, the JSON body, the `Retry-After` header and the raw body of one login.
    struct Answer {
        var status: HTTPResponse.Status
        var body: [String: Any]
        var retryAfter: String?
        var text: String
    }

    static func post(
        _ client: any TestClientProtocol, _ username: String, _ password: String, forwardedFor: String? = nil
    ) async throws -> Answer {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let forwardedFor { headers[Self.forwardedFor] = forwardedFor }
        return try await client.execute(
            uri: "/api/org_token/", method: .post, headers: headers, body: ByteBuffer(string: login(username, password))
        ) { response in
            Answer(
                status: response.status, body: try TestClientProtocolHelpers.object(response),
                retryAfter: response.headers[.retryAfter], text: String(buffer: response.body))
        }
    }

    func testWrongPasswordsAreThrottledAndTheThrottleResets() async throws {
        let harness = try await ServerHarness.make()
        try await harness.withClient { client in
            for _ in 0..<5 {
                let answer = try await Self.post(client, "alice", Self.wrongPassword)
                XCTAssertEqual(answer.status, .unauthorized)
                XCTAssertEqual(answer.body["error"] as? String, "invalid_credentials")
            }
            harness.clock.advance(by: 300)
            let throttled = try await Self.post(client, "alice", Self.wrongPassword)
            XCTAssertEqual(throttled.status, .tooManyRequests)
            XCTAssertEqual(throttled.body["error"] as? String, "too_many_attempts")
            XCTAssertEqual(throttled.retryAfter, "600", "whole seconds until the first failure leaves the 900 s window")
            XCTAssertNotNil(throttled.retryAfter.flatMap { Int($0) })
            XCTAssertFalse(throttled.text.contains(Self.wrongPassword))

            // Throttled, the right password is refused too: it was never looked at.
            let right = try await Self.post(client, "alice", ServerHarness.password)
            XCTAssertEqual(right.status, .tooManyRequests)
            XCTAssertEqual(right.body["error"] as? String, "too_many_attempts")
            XCTAssertFalse(right.text.contains(ServerHarness.password))

            harness.clock.advance(by: 599)
            let stillThrottled = try await Self.post(client, "alice", ServerHarness.password)
            XCTAssertEqual(stillThrottled.status, .tooManyRequests)
            XCTAssertEqual(stillThrottled.retryAfter, "1")

            harness.clock.advance(by: 1)
            let reset = try await Self.post(client, "alice", ServerHarness.password)
            XCTAssertEqual(reset.status, .ok, "the window has passed: the right password works again")
            XCTAssertNotNil(reset.body["access"] as? String)
        }
        XCTAssertEqual(harness.services.loginThrottle.throttledDecisions(in: .userAndIP), 3)
        let logs = harness.logs.all
        XCTAssertTrue(logs.contains { $0.contains("login throttling starts") && $0.contains("user_ip") }, "\(logs)")
        for line in logs {
            XCTAssertFalse(line.contains(Self.wrongPassword), line)
            XCTAssertFalse(line.contains(ServerHarness.password), line)
        }
        try await harness.shutdown()
    }

    func testARightPasswordStartsThePairAfresh() async throws {
        let harness = try await ServerHarness.make()
        try await harness.withClient { client in
            for _ in 0..<3 {
                for _ in 0..<4 {
                    let answer = try await Self.post(client, "alice", Self.wrongPassword)
                    XCTAssertEqual(answer.status, .unauthorized)
                }
                let right = try await Self.post(client, "alice", ServerHarness.password)
                XCTAssertEqual(right.status, .ok)
            }
        }
        try await harness.shutdown()
    }

    func testOneAddressIsThrottledAcrossUsernames() async throws {
        let harness = try await ServerHarness.make { $0.loginThrottleIP = 3 }
        try await harness.withClient { client in
            for name in ["mallory1", "bob", "mallory2"] {
                let answer = try await Self.post(client, name, Self.wrongPassword)
                XCTAssertEqual(answer.status, .unauthorized)
            }
            let throttled = try await Self.post(client, "alice", ServerHarness.password)
            XCTAssertEqual(throttled.status, .tooManyRequests)
            XCTAssertEqual(throttled.body["error"] as? String, "too_many_attempts")
            XCTAssertTrue((throttled.body["detail"] as? String)?.contains("from this address") ?? false)
            XCTAssertEqual(throttled.retryAfter, "900")

            harness.clock.advance(by: 900)
            let reset = try await Self.post(client, "alice", ServerHarness.password)
            XCTAssertEqual(reset.status, .ok)
        }
        XCTAssertEqual(harness.services.loginThrottle.throttledDecisions(in: .ip), 1)
        try await harness.shutdown()
    }

    func testOneUsernameIsThrottledAcrossForwardedAddresses() async throws {
        let harness = try await ServerHarness.make { configuration in
            configuration.trustedProxies = ["127.0.0.1"]
            configuration.loginThrottleUser = 3
        }
        try await harness.withClient { client in
            for host in 1...3 {
                let answer = try await Self.post(client, "alice", Self.wrongPassword, forwardedFor: "203.0.113.\(host)")
                XCTAssertEqual(answer.status, .unauthorized)
            }
            // Spraying from yet another address: the account is throttled, not locked.
            let throttled = try await Self.post(client, "alice", ServerHarness.password, forwardedFor: "198.51.100.7")
            XCTAssertEqual(throttled.status, .tooManyRequests)
            XCTAssertTrue((throttled.body["detail"] as? String)?.contains("for this username;") ?? false)
            // The addresses themselves are not throttled: bob's password is evaluated (and he
            // is not a member of org1).
            let bob = try await Self.post(client, "bob", ServerHarness.password, forwardedFor: "203.0.113.1")
            XCTAssertEqual(bob.body["error"] as? String, "not_a_member")

            harness.clock.advance(by: 900)
            let reset = try await Self.post(client, "alice", ServerHarness.password, forwardedFor: "198.51.100.7")
            XCTAssertEqual(reset.status, .ok)
        }
        XCTAssertEqual(harness.services.loginThrottle.throttledDecisions(in: .user), 1)
        try await harness.shutdown()
    }

    func testTheForwardedAddressCountsAsTheClientBehindATrustedProxy() async throws {
        let harness = try await ServerHarness.make { $0.trustedProxies = ["127.0.0.0/8"] }
        try await harness.withClient { client in
            for _ in 0..<5 {
                let answer = try await Self.post(client, "alice", Self.wrongPassword, forwardedFor: "203.0.113.1")
                XCTAssertEqual(answer.status, .unauthorized)
            }
            let throttled = try await Self.post(client, "alice", ServerHarness.password, forwardedFor: "203.0.113.1")
            XCTAssertEqual(throttled.status, .tooManyRequests)
            // Another client behind the same proxy has a pair of its own; the leftmost entry
            // is the client's own claim and changes nothing.
            let other = try await Self.post(
                client, "alice", ServerHarness.password, forwardedFor: "203.0.113.1, 203.0.113.2")
            XCTAssertEqual(other.status, .ok)
        }
        try await harness.shutdown()
    }

    func testForwardedForIsIgnoredFromAnUntrustedPeer() async throws {
        let harness = try await ServerHarness.make()  // trusted_proxies empty: the loopback peer is the client
        try await harness.withClient { client in
            for host in 1...5 {
                let answer = try await Self.post(client, "alice", Self.wrongPassword, forwardedFor: "203.0.113.\(host)")
                XCTAssertEqual(answer.status, .unauthorized)
            }
            let throttled = try await Self.post(client, "alice", ServerHarness.password, forwardedFor: "198.51.100.9")
            XCTAssertEqual(throttled.status, .tooManyRequests, "a fresh X-Forwarded-For is no fresh start")
            XCTAssertTrue((throttled.body["detail"] as? String)?.contains("this username from this address") ?? false)
        }
        try await harness.shutdown()
    }

    // MARK: Concurrent logins (issue 9.13)

    /// Sixteen requests on sixteen connections at the same moment, as a batch job's workers
    /// behind one NAT send them.
    struct ConcurrentAnswer: Sendable {
        var status: Int
        var retryAfter: String?
        var error: String?
        var hasAccessToken: Bool
    }

    static func concurrentLogins(port: Int, count: Int, password: String) async throws -> [ConcurrentAnswer] {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = count
        configuration.timeoutIntervalForRequest = 60
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let raw = try await withThrowingTaskGroup(of: (Int, String?, Data).self) { group in
            for _ in 0..<count {
                group.addTask {
                    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/api/org_token/")!)
                    request.httpMethod = "POST"
                    request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                    request.httpBody = Data(login("alice", password).utf8)
                    let (data, response) = try await session.data(for: request)
                    let http = try XCTUnwrap(response as? HTTPURLResponse)
                    return (http.statusCode, http.value(forHTTPHeaderField: "Retry-After"), data)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        return try raw.map { status, retryAfter, data in
            let body = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
            return ConcurrentAnswer(
                status: status, retryAfter: retryAfter, error: body["error"] as? String, hasAccessToken: body["access"] is String)
        }
    }

    /// Hashing slow enough, on one thread, that the sixteen logins are all in flight at once.
    static func oneSlowHashingThread(_ configuration: inout BrokerConfiguration) {
        configuration.argon2 = Argon2idParameters(memoryKiB: 8192, iterations: 2, parallelism: 1)
        configuration.passwordHashConcurrency = 1
    }

    func testSixteenSimultaneousRightPasswordsAllSucceed() async throws {
        let harness = try await ServerHarness.make { Self.oneSlowHashingThread(&$0) }
        let answers = try await harness.withClient { client in
            try await Self.concurrentLogins(port: try XCTUnwrap(client.port), count: 16, password: ServerHarness.password)
        }
        XCTAssertEqual(answers.map(\.status), Array(repeating: 200, count: 16), "\(answers.map { $0.error ?? "-" })")
        XCTAssertTrue(answers.allSatisfy(\.hasAccessToken))
        XCTAssertEqual(harness.services.loginThrottle.throttledDecisions(in: .userAndIP), 0)
        try await harness.shutdown()
    }

    func testAFloodOfWrongPasswordsEvaluatesAtMostTheLimit() async throws {
        let harness = try await ServerHarness.make { Self.oneSlowHashingThread(&$0) }
        let before = harness.services.passwords.verifications
        let answers = try await harness.withClient { client in
            try await Self.concurrentLogins(port: try XCTUnwrap(client.port), count: 24, password: Self.wrongPassword)
        }
        let evaluated = harness.services.passwords.verifications - before
        XCTAssertEqual(evaluated, 5, "login_throttle_user_ip = 5 wrong passwords per window, however many arrive at once")
        XCTAssertEqual(answers.filter { $0.status == 401 }.count, 5)
        let throttled = answers.filter { $0.status == 429 }
        XCTAssertEqual(throttled.count, 19)
        for answer in throttled {
            XCTAssertEqual(answer.error, "too_many_attempts")
            XCTAssertEqual(answer.retryAfter, "900", "the clock stands still: the whole window")
        }
        try await harness.shutdown()
    }
}
