import BrokerCore
import BrokerCrypto
import FakeGitHub
import Foundation
import GitHubClient
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// GitHub logins are throttled per client address over real HTTP, against the fake GitHub: over
/// `github_login_throttle_ip` every GitHub login route answers 429 with `Retry-After` in its own
/// family's error shape (and the contract's), without calling GitHub.
final class GitHubThrottleHTTPTests: XCTestCase {
    var github: FakeGitHub!
    var harness: ServerHarness!
    var contract: OpenAPIContract!

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    override func setUp() async throws {
        (github, harness) = try await ServerHarness.withFakeGitHub { configuration in
            configuration.githubLoginThrottleWindow = 60
            configuration.githubLoginThrottleIP = 3
            configuration.trustedProxies = ["127.0.0.1"]
        }
        github.addUser(login: "carol", id: 30, token: "ghp_carol", organizations: ["SlideRuleEarth": .member])
        contract = try OpenAPIContract.load()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
        await github.stop()
    }

    /// One request to a GitHub login route, from `address` (via the trusted proxy) when given.
    struct LoginRoute {
        var uri: String
        var body: String
        var form = false
    }

    static let routes: [String: LoginRoute] = [
        "pat": LoginRoute(uri: "/auth/github/pat", body: #"{"pat":"ghp_carol"}"#),
        "generation1": LoginRoute(uri: "/api/org_token_github/", body: #"{"org_name":"sliderule","access_token":"ghp_carol"}"#),
        "exchange": LoginRoute(
            uri: "/oauth/token",
            body: "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=ghp_carol"
                + "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token",
            form: true),
        "session": LoginRoute(uri: "/api/session/github", body: #"{"access_token":"ghp_carol"}"#),
        "device": LoginRoute(uri: "/auth/github/device", body: ""),
        "poll": LoginRoute(uri: "/auth/github/device/poll", body: #"{"device_code":"no-such-code"}"#),
    ]

    static func call(_ client: any TestClientProtocol, _ route: LoginRoute, from address: String? = nil) async throws -> LiveAnswer {
        var headers: HTTPFields = [.contentType: route.form ? "application/x-www-form-urlencoded" : "application/json"]
        if let address { headers[Self.forwardedFor] = address }
        return try await client.execute(uri: route.uri, method: .post, headers: headers, body: ByteBuffer(string: route.body)) {
            LiveAnswer(method: .post, uri: route.uri, status: $0.status, headers: $0.headers, body: Array($0.body.readableBytesView))
        }
    }

    func testEveryGitHubLoginRouteIsThrottledPerAddressInItsOwnShape() async throws {
        let harness = self.harness!
        let github = self.github!
        let contract = self.contract!
        try await harness.withClient { client in
            for _ in 0..<3 {
                let answer = try await Self.call(client, Self.routes["pat"]!)
                XCTAssertEqual(answer.status, .ok)
            }
            let callsToGitHub = github.requestCount()
            var throttled: [String: LiveAnswer] = [:]
            for (name, route) in Self.routes {
                throttled[name] = try await Self.call(client, route)
            }
            XCTAssertEqual(github.requestCount(), callsToGitHub, "a throttled login costs no call to GitHub")
            for (name, answer) in throttled {
                XCTAssertEqual(answer.status, .tooManyRequests, name)
                XCTAssertEqual(answer.headers[.retryAfter], "60", name)
                XCTAssertEqual(answer.json?["error"]?.string, "too_many_attempts", name)
                XCTAssertEqual(contract.violations(of: answer), [], name)
            }
            // Each family's shape.
            for name in ["pat", "device", "poll"] {
                XCTAssertEqual(throttled[name]?.json?["status"]?.string, "error", name)
                XCTAssertNotNil(throttled[name]?.json?["detail"]?.string, name)
            }
            for name in ["generation1", "session"] {
                XCTAssertNil(throttled[name]?.json?["status"], name)
                XCTAssertNotNil(throttled[name]?.json?["detail"]?.string, name)
            }
            XCTAssertNotNil(throttled["exchange"]?.json?["error_description"]?.string)

            // Another client behind the trusted proxy has a budget of its own.
            let elsewhere = try await Self.call(client, Self.routes["pat"]!, from: "203.0.113.8")
            XCTAssertEqual(elsewhere.status, .ok)

            // The window slides on: the first client may log in again.
            harness.clock.advance(by: 60)
            let again = try await Self.call(client, Self.routes["generation1"]!)
            XCTAssertEqual(again.status, .ok)
        }
        XCTAssertEqual(harness.services.github?.loginThrottle.throttledDecisions, 6)
    }

    func testFailedAndSuccessfulGitHubLoginsBothCount() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let unknown = LoginRoute(uri: "/auth/github/pat", body: #"{"pat":"ghp_nobody"}"#)
            let failed = try await Self.call(client, unknown)
            XCTAssertEqual(failed.status, .unauthorized)
            let succeeded = try await Self.call(client, Self.routes["pat"]!)
            XCTAssertEqual(succeeded.status, .ok)
            let started = try await Self.call(client, Self.routes["device"]!)
            XCTAssertEqual(started.status, .ok)
            let refused = try await Self.call(client, unknown)
            XCTAssertEqual(refused.status, .tooManyRequests)
            XCTAssertEqual(refused.headers[.retryAfter], "60")
            harness.clock.advance(by: 59)
            let last = try await Self.call(client, Self.routes["pat"]!)
            XCTAssertEqual(last.headers[.retryAfter], "1")
        }
    }
}
