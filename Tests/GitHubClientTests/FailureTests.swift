import BrokerCore
import FakeGitHub
import Foundation
import GitHubClient
import XCTest

/// Every way GitHub can fail, as the client reports it.
final class FailureTests: XCTestCase {
    var github: FakeGitHub!

    override func setUp() async throws {
        github = try await FakeGitHub.start()
        github.addUser(login: "alice", id: 42, token: "ghp_alice", organizations: ["acme": .member])
        github.addUser(login: "bob", id: 43, token: "ghp_bob", organizations: ["acme": .member])
        github.addToken("ghp_noscope", for: "alice", scopes: [])
    }

    override func tearDown() async throws {
        await github.stop()
    }

    func testRevokedAndUnknownTokensAreUnauthorized() async throws {
        let client = try github.client()
        github.revoke(token: "ghp_alice")
        let revoked = await gitHubError { () async throws(GitHubError) in try await client.user(token: "ghp_alice") }
        XCTAssertEqual(revoked, .unauthorized)
        let unknown = await gitHubError { () async throws(GitHubError) in try await client.teams(token: "ghp_nobody") }
        XCTAssertEqual(unknown, .unauthorized)
    }

    func testTokensThatCouldSplitHeadersNeverLeave() async throws {
        let client = try github.client()
        for token in ["", "ghp_a\r\nX-Evil: 1", "two words", "ghp_\u{7F}"] {
            let error = await gitHubError { () async throws(GitHubError) in try await client.user(token: token) }
            XCTAssertEqual(error, .unauthorized)
        }
        XCTAssertEqual(github.requestCount(), 0)
    }

    func testTokenWithoutReadOrgIsForbidden() async throws {
        let client = try github.client()
        let user = try await client.user(token: "ghp_noscope")
        XCTAssertEqual(user.login, "alice")
        let membership = await gitHubError { () async throws(GitHubError) in
            try await client.organizationMembership(token: "ghp_noscope", organization: "acme", login: "alice")
        }
        guard case .forbidden(let message) = membership else { return XCTFail("got \(String(describing: membership))") }
        XCTAssertTrue(message.contains("read:org"), message)
        let teams = await gitHubError { () async throws(GitHubError) in try await client.teams(token: "ghp_noscope") }
        guard case .forbidden = teams else { return XCTFail("got \(String(describing: teams))") }
    }

    func testPrimaryRateLimitBlocksTheTokenUntilTheReset() async throws {
        let clock = ManualWallClock()
        let client = try github.client(clock: clock)
        github.exhaustRateLimit(token: "ghp_alice", answer: .forbidden(resetAt: clock.now().addingTimeInterval(120)))

        let first = await gitHubError { () async throws(GitHubError) in try await client.user(token: "ghp_alice") }
        XCTAssertEqual(first, .rateLimited(retryAfter: 120))
        XCTAssertEqual(github.requestCount(token: "ghp_alice"), 1)

        // Until the reset, no call with that token reaches GitHub, whatever the endpoint.
        clock.advance(by: 50)
        let second = await gitHubError { () async throws(GitHubError) in
            try await client.organizationMembership(token: "ghp_alice", organization: "acme", login: "alice")
        }
        XCTAssertEqual(second, .rateLimited(retryAfter: 70))
        let third = await gitHubError { () async throws(GitHubError) in try await client.teams(token: "ghp_alice") }
        XCTAssertEqual(third, .rateLimited(retryAfter: 70))
        XCTAssertEqual(github.requestCount(token: "ghp_alice"), 1)

        // Other tokens are unaffected.
        let bob = try await client.user(token: "ghp_bob")
        XCTAssertEqual(bob.login, "bob")

        clock.advance(by: 71)
        github.restoreRateLimit(token: "ghp_alice")
        let alice = try await client.user(token: "ghp_alice")
        XCTAssertEqual(alice.login, "alice")
        XCTAssertEqual(github.requestCount(token: "ghp_alice"), 2)
    }

    func testSecondaryRateLimitHonoursRetryAfter() async throws {
        let clock = ManualWallClock()
        let client = try github.client(clock: clock)
        // The fake also sends an X-RateLimit-Reset an hour away: Retry-After must win.
        github.exhaustRateLimit(token: "ghp_alice", answer: .tooManyRequests(retryAfter: 30))

        let first = await gitHubError { () async throws(GitHubError) in try await client.teams(token: "ghp_alice") }
        XCTAssertEqual(first, .rateLimited(retryAfter: 30))
        clock.advance(by: 29.5)
        let second = await gitHubError { () async throws(GitHubError) in try await client.user(token: "ghp_alice") }
        XCTAssertEqual(second, .rateLimited(retryAfter: 1))
        XCTAssertEqual(github.requestCount(token: "ghp_alice"), 1)

        clock.advance(by: 1)
        github.restoreRateLimit(token: "ghp_alice")
        _ = try await client.user(token: "ghp_alice")
        XCTAssertEqual(github.requestCount(token: "ghp_alice"), 2)
    }

    func testServerErrorsAreUnavailable() async throws {
        let client = try github.client()
        for status in [500, 502, 503] {
            github.inject(.status(status), on: .user, times: 1)
            let error = await gitHubError { () async throws(GitHubError) in try await client.user(token: "ghp_alice") }
            XCTAssertEqual(error, .unavailable("HTTP \(status)"))
        }
        // An unexpected client error is not mistaken for a verdict on the token.
        github.inject(.status(422), on: .user, times: 1)
        assertMalformed(await gitHubError { () async throws(GitHubError) in try await client.user(token: "ghp_alice") })
        _ = try await client.user(token: "ghp_alice")
    }

    func testMalformedBodies() async throws {
        let client = try github.client()
        github.inject(.malformedBody, on: .user, times: 1)
        assertMalformed(await gitHubError { () async throws(GitHubError) in try await client.user(token: "ghp_alice") })
        github.inject(.wrongShape, on: .membership, times: 1)
        assertMalformed(await gitHubError { () async throws(GitHubError) in
            try await client.organizationMembership(token: "ghp_alice", organization: "acme", login: "alice")
        })
        github.inject(.wrongShape, on: .teams, times: 1)
        assertMalformed(await gitHubError { () async throws(GitHubError) in try await client.teams(token: "ghp_alice") })
        github.inject(.malformedBody, on: .deviceCode, times: 1)
        assertMalformed(await gitHubError { () async throws(GitHubError) in try await client.requestDeviceCode(scope: "read:org") })
    }

    func testOversizedBodyIsRefused() async throws {
        github.setTeams(login: "alice", (0..<100).map { (organization: "acme", slug: "team-\($0)") })
        let client = try github.client { $0.maximumResponseBytes = 1024 }
        assertMalformed(await gitHubError { () async throws(GitHubError) in try await client.teams(token: "ghp_alice") })
        _ = try await client.user(token: "ghp_alice")
    }

    func testSlowServerTimesOutWithinTheTotalTimeout() async throws {
        let client = try github.client(totalTimeout: .seconds(1))
        github.inject(.delay(.seconds(4)), on: .user, times: 1)
        let started = ContinuousClock.now
        let error = await gitHubError { () async throws(GitHubError) in try await client.user(token: "ghp_alice") }
        let elapsed = ContinuousClock.now - started
        XCTAssertEqual(error, .unavailable("timed out"))
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(900))
        XCTAssertLessThan(elapsed, .milliseconds(2500))
        // The next call works (on a new connection: the timed-out one was dropped).
        _ = try await client.user(token: "ghp_alice")
    }

    func testTeamsPagesShareOneDeadline() async throws {
        let paged = try await FakeGitHub.start(maximumPerPage: 1)
        paged.addUser(login: "alice", token: "ghp_alice", teams: (0..<3).map { (organization: "acme", slug: "t\($0)") })
        paged.inject(.delay(.milliseconds(600)), on: .teams)
        let client = try paged.client(totalTimeout: .seconds(1))
        let started = ContinuousClock.now
        let error = await gitHubError { () async throws(GitHubError) in try await client.teams(token: "ghp_alice") }
        XCTAssertEqual(error, .unavailable("timed out"))
        XCTAssertLessThan(ContinuousClock.now - started, .milliseconds(1800))
        await paged.stop()
    }

    func testConnectionResetAndCloseAreUnavailable() async throws {
        let client = try github.client()
        _ = try await client.user(token: "ghp_alice")  // a kept-alive connection to be reset
        // libcurl retries once, on a fresh connection, when a reused one dies before any byte
        // of the answer: a single dropped connection is absorbed, a persistent fault is not.
        github.inject(.resetConnection, on: .user, times: 1)
        _ = try await client.user(token: "ghp_alice")
        XCTAssertEqual(github.requestCount(on: .user), 3)

        github.inject(.resetConnection, on: .user)
        assertUnavailable(await gitHubError { () async throws(GitHubError) in try await client.user(token: "ghp_alice") })
        github.inject(.closeConnection, on: .teams)
        assertUnavailable(await gitHubError { () async throws(GitHubError) in try await client.teams(token: "ghp_alice") })
        github.inject(.resetConnection, on: .accessToken)
        assertUnavailable(await gitHubError { () async throws(GitHubError) in
            try await client.pollDeviceAuthorization(deviceCode: "whatever")
        })
        github.clearFaults()
        _ = try await client.user(token: "ghp_alice")
    }

    func testUnreachableServerIsUnavailable() async throws {
        let client = try github.client()
        await github.stop()
        let started = ContinuousClock.now
        assertUnavailable(await gitHubError { () async throws(GitHubError) in try await client.user(token: "ghp_alice") })
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(2))
    }

    func testCancellationAbortsTheTransfer() async throws {
        let client = try github.client()
        github.inject(.delay(.seconds(5)), on: .user, times: 1)
        let started = ContinuousClock.now
        let task = Task { () async throws(GitHubError) -> GitHubUser in try await client.user(token: "ghp_alice") }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        let result = await task.result
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(2))
        guard case .failure(let error) = result, case .unavailable = error as? GitHubError else {
            return XCTFail("got \(result)")
        }
    }

    func testNoSecretInAnyErrorDescription() async throws {
        let clock = ManualWallClock()
        let client = try github.client(clock: clock, totalTimeout: .seconds(1))
        let secret = "ghp_SECRETSECRETSECRET"
        let deviceCode = "DEVICECODESECRET0123"
        github.addToken(secret, for: "alice", scopes: [])
        var errors: [GitHubError] = []
        func collect(_ body: () async throws(GitHubError) -> Void) async {
            do { try await body() } catch { errors.append(error) }
        }
        await collect { () async throws(GitHubError) in
            _ = try await client.organizationMembership(token: secret, organization: "acme", login: "alice")
        }
        for fault in [FakeGitHub.Fault.status(502), .malformedBody, .resetConnection, .delay(.seconds(2))] {
            github.inject(fault, on: .user)
            github.inject(fault, on: .accessToken)
            await collect { () async throws(GitHubError) in _ = try await client.user(token: secret) }
            await collect { () async throws(GitHubError) in _ = try await client.pollDeviceAuthorization(deviceCode: deviceCode) }
            github.clearFaults()
        }
        github.exhaustRateLimit(token: secret, answer: .tooManyRequests(retryAfter: 5))
        await collect { () async throws(GitHubError) in _ = try await client.user(token: secret) }
        await collect { () async throws(GitHubError) in _ = try await client.user(token: secret) }
        github.revoke(token: secret)
        clock.advance(by: 10)
        await collect { () async throws(GitHubError) in _ = try await client.user(token: secret) }

        XCTAssertEqual(errors.count, 12)
        for error in errors {
            let text = "\(error) \(String(reflecting: error))"
            XCTAssertFalse(text.contains(secret), text)
            XCTAssertFalse(text.contains(deviceCode), text)
        }
    }
}
