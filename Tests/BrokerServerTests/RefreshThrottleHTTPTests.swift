import BrokerCore
import FakeGitHub
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

/// A session renewed in a loop: past `refresh_throttle_session` renewals a minute, 429
/// `too_many_attempts` with `Retry-After`, in each route family's own error shape, on a real
/// socket. The refused refresh token stays good for after the wait.
final class RefreshThrottleHTTPTests: XCTestCase {
    struct Answer {
        var status: HTTPResponse.Status
        var body: [String: Any]
        var retryAfter: String?
    }

    static func send(
        _ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, contentType: String? = nil,
        body: String = "", headers: HTTPFields = [:]
    ) async throws -> Answer {
        var all = headers
        if let contentType { all[.contentType] = contentType }
        return try await client.execute(uri: uri, method: method, headers: all, body: ByteBuffer(string: body)) { response in
            Answer(
                status: response.status, body: try TestClientProtocolHelpers.object(response),
                retryAfter: response.headers[.retryAfter])
        }
    }

    func testGeneration1RefreshLoopIsCutOffWith429() async throws {
        let harness = try await ServerHarness.make()
        try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/api/org_token/", Generation1HTTPTests.login)
            var refresh = try XCTUnwrap(login["refresh"] as? String)
            func renew() async throws -> Answer {
                try await Self.send(
                    client, .post, "/api/org_token/refresh/", contentType: "application/json",
                    body: #"{"refresh":"\#(refresh)"}"#)
            }
            for _ in 0..<6 {
                let answer = try await renew()
                XCTAssertEqual(answer.status, .ok)
                refresh = try XCTUnwrap(answer.body["refresh"] as? String)
            }
            harness.clock.advance(by: 10)
            let refused = try await renew()
            XCTAssertEqual(refused.status, .tooManyRequests)
            XCTAssertEqual(Set(refused.body.keys), ["error", "detail"])
            XCTAssertEqual(refused.body["error"] as? String, "too_many_attempts")
            XCTAssertEqual(refused.retryAfter, "50")
            harness.clock.advance(by: 50)
            let answer = try await renew()
            XCTAssertEqual(answer.status, .ok, "the refused token was not consumed")
        }
        try await harness.shutdown()
    }

    func testOAuthRefreshGrantLoopIsCutOffWith429() async throws {
        let harness = try await ServerHarness.make()
        try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/api/org_token/", Generation1HTTPTests.login)
            var refresh = try XCTUnwrap(login["refresh"] as? String)
            func renew() async throws -> Answer {
                try await Self.send(
                    client, .post, "/oauth/token", contentType: "application/x-www-form-urlencoded",
                    body: "grant_type=refresh_token&refresh_token=\(refresh)")
            }
            for _ in 0..<6 {
                let answer = try await renew()
                XCTAssertEqual(answer.status, .ok)
                refresh = try XCTUnwrap(answer.body["refresh_token"] as? String)
            }
            let refused = try await renew()
            XCTAssertEqual(refused.status, .tooManyRequests)
            XCTAssertEqual(Set(refused.body.keys), ["error", "error_description"])
            XCTAssertEqual(refused.body["error"] as? String, "too_many_attempts")
            XCTAssertEqual(refused.retryAfter, "60")
        }
        try await harness.shutdown()
    }

    func testGeneration2RenewalLoopIsCutOffWith429() async throws {
        let (github, githubClient, clock) = try await FakeGitHub.startWithClient()
        let harness = try await ServerHarness.make(githubAPI: githubClient, clock: clock) { configuration in
            configuration.githubOrganizations = [
                GitHubOrganizationMapping(organization: "sliderule", githubOrganization: "SlideRuleEarth", teams: [:])
            ]
        }
        github.addUser(login: "carol", id: 30, token: "ghp_carol", organizations: ["SlideRuleEarth": .member])
        try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/auth/github/pat", #"{"pat":"ghp_carol"}"#)
            var token = try XCTUnwrap(login["token"] as? String)
            func renew() async throws -> Answer {
                try await Self.send(client, .get, "/auth/refresh", headers: [.authorization: "Bearer \(token)"])
            }
            for _ in 0..<6 {
                let answer = try await renew()
                XCTAssertEqual(answer.status, .ok)
                token = try XCTUnwrap(answer.body["token"] as? String)
            }
            let refused = try await renew()
            XCTAssertEqual(refused.status, .tooManyRequests)
            XCTAssertEqual(refused.body["status"] as? String, "error")
            XCTAssertEqual(refused.body["error"] as? String, "too_many_attempts")
            XCTAssertEqual(refused.retryAfter, "60")
            clock.advance(by: 60)
            let afterTheWait = try await renew()
            XCTAssertEqual(afterTheWait.status, .ok)
        }
        try await harness.shutdown()
        await github.stop()
    }
}
