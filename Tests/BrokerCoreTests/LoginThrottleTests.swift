import BrokerCore
import Foundation
import XCTest

/// The sliding-window counters of failed logins, on a manual clock.
final class LoginThrottleTests: XCTestCase {
    let clock = ManualWallClock(Date(timeIntervalSince1970: 1_800_000_000))

    func throttle(
        window: Int = 900, userAndIP: Int = 5, user: Int = 20, ip: Int = 100, maximumTrackedKeys: Int = 10_000
    ) -> LoginThrottle {
        LoginThrottle(
            policy: LoginThrottlePolicy(
                window: window, userAndIPLimit: userAndIP, userLimit: user, ipLimit: ip,
                maximumTrackedKeys: maximumTrackedKeys),
            clock: clock)
    }

    /// Admits and leaves the attempt counted: a wrong password.
    func fail(_ throttle: LoginThrottle, _ username: String, _ clientIP: String?, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNoThrow(try throttle.admit(username: username, clientIP: clientIP), file: file, line: line)
    }

    /// The error of a refused attempt, or a failure when it is admitted.
    func refusal(_ throttle: LoginThrottle, _ username: String, _ clientIP: String?, file: StaticString = #filePath, line: UInt = #line) -> BrokerError? {
        do {
            _ = try throttle.admit(username: username, clientIP: clientIP)
            XCTFail("expected too_many_attempts for \(username) from \(clientIP ?? "nil")", file: file, line: line)
            return nil
        } catch let error as BrokerError {
            XCTAssertEqual(error.code, .tooManyAttempts, file: file, line: line)
            return error
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
            return nil
        }
    }

    func testPolicyComesFromTheConfiguration() {
        var configuration = BrokerConfiguration()
        configuration.loginThrottleWindow = 60
        configuration.loginThrottleUserIP = 2
        configuration.loginThrottleUser = 3
        configuration.loginThrottleIP = 4
        let policy = LoginThrottlePolicy(configuration)
        XCTAssertEqual(policy.window, 60)
        XCTAssertEqual(policy.limit(for: .userAndIP), 2)
        XCTAssertEqual(policy.limit(for: .user), 3)
        XCTAssertEqual(policy.limit(for: .ip), 4)
        XCTAssertEqual(policy.maximumTrackedKeys, LoginThrottlePolicy.defaultMaximumTrackedKeys)
        XCTAssertEqual(ThrottleScope.userAndIP.rawValue, "user_ip")
    }

    func testDefaultsAllowFewerFailuresPerAccountThanASVS() {
        let policy = LoginThrottlePolicy(BrokerConfiguration())
        let perHour = policy.userLimit * 3600 / policy.window
        XCTAssertLessThan(perHour, 100, "ASVS allows at most 100 failed attempts per hour on one account")
    }

    func testUserAndIPLimitWithRetryAfterUntilTheOldestFailureLeaves() throws {
        let throttle = throttle(window: 900, userAndIP: 3)
        fail(throttle, "alice", "192.0.2.1")
        clock.advance(by: 100)
        fail(throttle, "alice", "192.0.2.1")
        fail(throttle, "alice", "192.0.2.1")
        let error = try XCTUnwrap(refusal(throttle, "alice", "192.0.2.1"))
        XCTAssertEqual(error.retryAfter, 800, "the first failure leaves the window 900 s after it happened")
        XCTAssertTrue(error.detail.contains("this username from this address"), error.detail)
        XCTAssertEqual(throttle.throttledDecisions(in: .userAndIP), 1)
        XCTAssertEqual(throttle.throttledDecisions(in: .user), 0)
        // Another address, another username: other pairs.
        fail(throttle, "alice", "192.0.2.2")
        fail(throttle, "bob", "192.0.2.1")
    }

    func testRefusedAttemptsAreNotCounted() throws {
        let throttle = throttle(window: 900, userAndIP: 2)
        fail(throttle, "alice", "192.0.2.1")
        fail(throttle, "alice", "192.0.2.1")
        for _ in 0..<10 { _ = refusal(throttle, "alice", "192.0.2.1") }
        clock.advance(by: 900)
        fail(throttle, "alice", "192.0.2.1")
        fail(throttle, "alice", "192.0.2.1")
        XCTAssertEqual(throttle.throttledDecisions(in: .userAndIP), 10)
    }

    func testTheWindowSlidesInsteadOfResettingAtFixedTimes() throws {
        let throttle = throttle(window: 60, userAndIP: 3)
        fail(throttle, "alice", "192.0.2.1")  // t = 0
        clock.advance(by: 40)
        fail(throttle, "alice", "192.0.2.1")  // t = 40
        clock.advance(by: 10)
        fail(throttle, "alice", "192.0.2.1")  // t = 50
        clock.advance(by: 9)  // t = 59: all three still count
        XCTAssertEqual(refusal(throttle, "alice", "192.0.2.1")?.retryAfter, 1)
        clock.advance(by: 1)  // t = 60: the first left; a fixed window would have emptied at once
        fail(throttle, "alice", "192.0.2.1")
        XCTAssertEqual(refusal(throttle, "alice", "192.0.2.1")?.retryAfter, 40, "the failure at t = 40 goes at t = 100")
        clock.advance(by: 40)
        fail(throttle, "alice", "192.0.2.1")
    }

    func testRetryAfterIsWholeSecondsRoundedUp() throws {
        let throttle = throttle(window: 10, userAndIP: 1)
        fail(throttle, "alice", "192.0.2.1")
        clock.advance(by: 7.2)
        XCTAssertEqual(refusal(throttle, "alice", "192.0.2.1")?.retryAfter, 3)
        clock.advance(by: 2.7)
        XCTAssertEqual(refusal(throttle, "alice", "192.0.2.1")?.retryAfter, 1, "never 0")
    }

    func testUserLimitCountsEveryAddress() throws {
        let throttle = throttle(userAndIP: 5, user: 4, ip: 100)
        for host in 1...4 { fail(throttle, "alice", "198.51.100.\(host)") }
        let error = try XCTUnwrap(refusal(throttle, "alice", "203.0.113.77"))
        XCTAssertTrue(error.detail.contains("for this username;"), error.detail)
        XCTAssertEqual(throttle.throttledDecisions(in: .user), 1)
        XCTAssertNotNil(refusal(throttle, "alice", nil), "without an address the username still counts")
        fail(throttle, "bob", "203.0.113.77")
    }

    func testIPLimitCountsEveryUsername() throws {
        let throttle = throttle(userAndIP: 5, user: 20, ip: 3)
        for name in ["u1", "u2", "u3"] { fail(throttle, name, "192.0.2.1") }
        let error = try XCTUnwrap(refusal(throttle, "u4", "192.0.2.1"))
        XCTAssertTrue(error.detail.contains("from this address"), error.detail)
        XCTAssertEqual(throttle.throttledDecisions(in: .ip), 1)
        fail(throttle, "u4", "192.0.2.2")
    }

    func testTheLongestWaitDecides() throws {
        let throttle = throttle(window: 900, userAndIP: 2, user: 3)
        fail(throttle, "alice", "198.51.100.1")  // t = 0: user
        clock.advance(by: 100)
        fail(throttle, "alice", "192.0.2.1")  // t = 100: user, pair
        clock.advance(by: 100)
        fail(throttle, "alice", "192.0.2.1")  // t = 200: user (full, frees at 900), pair (full, frees at 1000)
        let error = try XCTUnwrap(refusal(throttle, "alice", "192.0.2.1"))
        XCTAssertEqual(error.retryAfter, 800)
        XCTAssertTrue(error.detail.contains("this username from this address"))
    }

    func testSuccessClearsOnlyThePair() throws {
        let throttle = throttle(userAndIP: 3, user: 5, ip: 6)
        fail(throttle, "alice", "192.0.2.1")
        fail(throttle, "alice", "192.0.2.1")
        fail(throttle, "bob", "192.0.2.1")
        fail(throttle, "alice", "198.51.100.1")
        throttle.recordSuccess(try throttle.admit(username: "alice", clientIP: "192.0.2.1"))
        // The pair starts afresh, but the username counter still holds alice's three failures
        // (two from here, one from elsewhere): two more fill it.
        fail(throttle, "alice", "192.0.2.1")
        fail(throttle, "alice", "192.0.2.1")
        XCTAssertTrue(refusal(throttle, "alice", "192.0.2.1")?.detail.contains("for this username;") ?? false)
        // The address still holds its failures against alice and bob: one more fills it.
        fail(throttle, "carol", "192.0.2.1")
        XCTAssertTrue(refusal(throttle, "dave", "192.0.2.1")?.detail.contains("from this address") ?? false)
    }

    func testSuccessTakesBackItsOwnCount() throws {
        let throttle = throttle(userAndIP: 5, user: 2, ip: 100)
        for _ in 0..<5 {
            throttle.recordSuccess(try throttle.admit(username: "alice", clientIP: "192.0.2.1"))
        }
        fail(throttle, "alice", "198.51.100.1")
        fail(throttle, "alice", "198.51.100.2")
        XCTAssertNotNil(refusal(throttle, "alice", "198.51.100.3"))
    }

    func testWithdrawnAttemptsDoNotCount() throws {
        let throttle = throttle(userAndIP: 2)
        for _ in 0..<5 {
            throttle.withdraw(try throttle.admit(username: "alice", clientIP: "192.0.2.1"))
        }
        XCTAssertEqual(throttle.trackedKeys(in: .userAndIP), 0)
        fail(throttle, "alice", "192.0.2.1")
        fail(throttle, "alice", "192.0.2.1")
        XCTAssertNotNil(refusal(throttle, "alice", "192.0.2.1"))
    }

    func testAttemptsInFlightCountBeforeTheyFinish() throws {
        let throttle = throttle(userAndIP: 3)
        // Three guesses sent at once, none finished: a fourth must not reach the password.
        let inFlight = try (0..<3).map { _ in try throttle.admit(username: "alice", clientIP: "192.0.2.1") }
        XCTAssertNotNil(refusal(throttle, "alice", "192.0.2.1"))
        XCTAssertEqual(inFlight.last?.reachesLimit, [.userAndIP])
        XCTAssertEqual(inFlight.first?.reachesLimit, [])
    }

    func testEverythingResetsAfterTheWindow() throws {
        let throttle = throttle(window: 900, userAndIP: 1, user: 2, ip: 3)
        fail(throttle, "alice", "192.0.2.1")
        fail(throttle, "alice", "192.0.2.2")
        fail(throttle, "bob", "192.0.2.3")
        XCTAssertNotNil(refusal(throttle, "alice", "192.0.2.4"))
        clock.advance(by: 900)
        fail(throttle, "alice", "192.0.2.1")
        fail(throttle, "alice", "192.0.2.2")
    }

    func testIPv6AddressesCountByTheirSlash64() throws {
        let throttle = throttle(userAndIP: 2, user: 100, ip: 3)
        fail(throttle, "u1", "2001:db8:1:2::1")
        fail(throttle, "u2", "2001:db8:1:2:ffff:ffff:ffff:ffff")
        fail(throttle, "u3", "2001:db8:1:2:abcd::9")
        XCTAssertNotNil(refusal(throttle, "u4", "2001:db8:1:2::4242"))
        fail(throttle, "u4", "2001:db8:1:3::1")
        // The pair counts the /64 too: a fresh address in it is no fresh start.
        fail(throttle, "alice", "2001:db8:9:9::1")
        fail(throttle, "alice", "2001:db8:9:9::2")
        XCTAssertNotNil(refusal(throttle, "alice", "2001:db8:9:9::3"))
    }

    func testIPv4MappedAddressesCountAsIPv4() throws {
        let throttle = throttle(userAndIP: 5, user: 100, ip: 2)
        fail(throttle, "u1", "192.0.2.1")
        fail(throttle, "u2", "::ffff:192.0.2.1")
        XCTAssertNotNil(refusal(throttle, "u3", "192.0.2.1"))
    }

    func testTrackedKeysStayBoundedAndTheStalestGoFirst() throws {
        let throttle = throttle(window: 900, userAndIP: 1, user: 1, ip: 1_000_000, maximumTrackedKeys: 10)
        for index in 0..<10 {
            fail(throttle, "flood\(index)", nil)
            clock.advance(by: 1)
        }
        fail(throttle, "victim", nil)
        XCTAssertLessThanOrEqual(throttle.trackedKeys(in: .user), 10)
        XCTAssertNotNil(refusal(throttle, "victim", nil), "the freshest key stays")
        XCTAssertNotNil(refusal(throttle, "flood9", nil))
        fail(throttle, "flood0", nil)  // forgotten: its failure no longer counts

        for index in 0..<1000 {
            fail(throttle, "random\(index)", "198.51.100.\(index % 200)")
            XCTAssertLessThanOrEqual(throttle.trackedKeys(in: .user), 10)
            XCTAssertLessThanOrEqual(throttle.trackedKeys(in: .userAndIP), 10)
            XCTAssertLessThanOrEqual(throttle.trackedKeys(in: .ip), 10)
        }
    }

    func testExpiredKeysAreForgottenBeforeFreshOnes() throws {
        let throttle = throttle(window: 60, user: 1, maximumTrackedKeys: 4)
        fail(throttle, "old1", nil)
        fail(throttle, "old2", nil)
        clock.advance(by: 120)
        fail(throttle, "new1", nil)
        fail(throttle, "new2", nil)
        fail(throttle, "new3", nil)  // full: the expired go, the fresh stay
        XCTAssertEqual(throttle.trackedKeys(in: .user), 3)
        for name in ["new1", "new2", "new3"] { XCTAssertNotNil(refusal(throttle, name, nil)) }
    }

    func testHugeUsernamesAreKeptAsDigests() throws {
        let throttle = throttle(userAndIP: 1)
        let huge = String(repeating: "x", count: 60_000)
        fail(throttle, huge, "192.0.2.1")
        XCTAssertNotNil(refusal(throttle, huge, "192.0.2.1"))
        fail(throttle, huge + "y", "192.0.2.1")
    }
}
