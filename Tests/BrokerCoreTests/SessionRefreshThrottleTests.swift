import BrokerCore
import Foundation
import XCTest

/// ``SessionRefreshThrottle``: a session renews at most `refresh_throttle_session` times per
/// `refresh_throttle_window`, and a SlideRule client's own cadence never meets the limit.
final class SessionRefreshThrottleTests: XCTestCase {
    var harness: CoreHarness!
    var service: OrgTokenService { harness.services.orgTokens }

    override func setUp() async throws {
        harness = try await CoreHarness.make()
        try await harness.seed()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    func login() async throws -> TokenBundle {
        try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
    }

    func testRenewalsBeyondTheLimitAre429AndLeaveTheTokenUnused() async throws {
        var bundle = try await login()
        for _ in 0..<6 {
            harness.clock.advance(by: 1)
            bundle = try await service.refresh(bundle.refresh)
        }
        harness.clock.advance(by: 1)
        do {
            _ = try await service.refresh(bundle.refresh)
            XCTFail("the seventh renewal within a minute was admitted")
        } catch let error as BrokerError {
            XCTAssertEqual(error.code, .tooManyAttempts)
            // The first renewal, 6 s ago, leaves the window in 54 s.
            XCTAssertEqual(error.retryAfter, 54)
        }
        // Another session of the same account is not affected.
        _ = try await service.refresh(try await login().refresh)
        // The refused token was not consumed: after Retry-After it renews (no reuse alarm).
        harness.clock.advance(by: 54)
        let next = try await service.refresh(bundle.refresh)
        XCTAssertEqual(next.claims.sessionID, bundle.claims.sessionID)
    }

    func testASlideRuleClientsCadenceNeverMeetsTheLimit() async throws {
        // The shortest access lifetime an organization may set is 60 s: generation-1 clients then
        // renew every 30 s. Each renewal is sent twice here (a retry racing the first answer,
        // inside refresh_reuse_grace), for two hours.
        _ = try await harness.services.accounts.setTokenPolicy(
            organization: "org1", to: OrganizationTokenPolicy(accessLifetime: 60), brokerAccessLifetime: 3600,
            by: .operator)
        var bundle = try await login()
        XCTAssertEqual(bundle.accessLifetime, 60)
        for _ in 0..<240 {
            harness.clock.advance(by: TimeInterval(bundle.accessLifetime / 2))
            let first = try await service.refresh(bundle.refresh)
            let retried = try await service.refresh(bundle.refresh)
            XCTAssertEqual(first.refresh, retried.refresh)
            bundle = first
        }
    }

    func testAConfiguredLimitBelowTheClientsCadenceIsRaised() {
        var configuration = BrokerConfiguration()
        configuration.refreshThrottleSession = 1
        XCTAssertEqual(SessionRefreshThrottlePolicy(configuration).sessionLimit, 4)
        configuration.accessLifetime = 10  // renewed every 5 s: 12 a minute, and 2 more
        XCTAssertEqual(SessionRefreshThrottlePolicy(configuration).sessionLimit, 14)
        configuration.refreshThrottleSession = 20
        XCTAssertEqual(SessionRefreshThrottlePolicy(configuration).sessionLimit, 20)
    }

    func testQuietSessionsAreForgottenButCountingOnesAreNot() async throws {
        let clock = ManualWallClock()
        let throttle = SessionRefreshThrottle(
            policy: SessionRefreshThrottlePolicy(window: 60, sessionLimit: 2), clock: clock, counting: .inProcess)
        try await throttle.admit(sessionID: "busy")
        try await throttle.admit(sessionID: "busy")
        for index in 0..<5000 {
            clock.advance(by: 0.01)
            try await throttle.admit(sessionID: "quiet-\(index)")
        }
        // 50 s later the busy session is still over its limit, however many others came.
        await XCTAssertThrowsErrorAsync(try await throttle.admit(sessionID: "busy"))
        clock.advance(by: 61)
        for index in 0..<3500 { try await throttle.admit(sessionID: "later-\(index)") }
        XCTAssertLessThanOrEqual(throttle.trackedSessions, 3500, "sessions quiet for a window are swept")
        try await throttle.admit(sessionID: "busy")
    }
}
