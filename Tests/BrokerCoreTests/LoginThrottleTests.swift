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
            clock: clock, counting: .inProcess)
    }

    /// Admits and records a failure: a wrong password.
    func fail(_ throttle: LoginThrottle, _ username: String, _ clientIP: String?, file: StaticString = #filePath, line: UInt = #line) async {
        do {
            throttle.recordFailure(try await throttle.admit(username: username, clientIP: clientIP))
        } catch {
            XCTFail("\(username) from \(clientIP ?? "nil") refused: \(error)", file: file, line: line)
        }
    }

    func assertRefused(_ throttle: LoginThrottle, _ username: String, _ clientIP: String?, file: StaticString = #filePath, line: UInt = #line) async {
        _ = await refusal(throttle, username, clientIP, file: file, line: line)
    }

    /// The error of a refused attempt, or a failure when it is admitted.
    func refusal(_ throttle: LoginThrottle, _ username: String, _ clientIP: String?, file: StaticString = #filePath, line: UInt = #line) async -> BrokerError? {
        do {
            _ = try await throttle.admit(username: username, clientIP: clientIP)
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

    func testPolicyComesFromTheConfiguration() async {
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

    func testDefaultsAllowFewerFailuresPerAccountThanASVS() async {
        let policy = LoginThrottlePolicy(BrokerConfiguration())
        let perHour = policy.userLimit * 3600 / policy.window
        XCTAssertLessThan(perHour, 100, "ASVS allows at most 100 failed attempts per hour on one account")
    }

    func testUserAndIPLimitWithRetryAfterUntilTheOldestFailureLeaves() async throws {
        let throttle = throttle(window: 900, userAndIP: 3)
        await fail(throttle, "alice", "192.0.2.1")
        clock.advance(by: 100)
        await fail(throttle, "alice", "192.0.2.1")
        await fail(throttle, "alice", "192.0.2.1")
        let refused = await refusal(throttle, "alice", "192.0.2.1")
        let error = try XCTUnwrap(refused)
        XCTAssertEqual(error.retryAfter, 800, "the first failure leaves the window 900 s after it happened")
        XCTAssertTrue(error.detail.contains("this username from this address"), error.detail)
        XCTAssertEqual(throttle.throttledDecisions(in: .userAndIP), 1)
        XCTAssertEqual(throttle.throttledDecisions(in: .user), 0)
        // Another address, another username: other pairs.
        await fail(throttle, "alice", "192.0.2.2")
        await fail(throttle, "bob", "192.0.2.1")
    }

    func testRefusedAttemptsAreNotCounted() async throws {
        let throttle = throttle(window: 900, userAndIP: 2)
        await fail(throttle, "alice", "192.0.2.1")
        await fail(throttle, "alice", "192.0.2.1")
        for _ in 0..<10 { _ = await refusal(throttle, "alice", "192.0.2.1") }
        clock.advance(by: 900)
        await fail(throttle, "alice", "192.0.2.1")
        await fail(throttle, "alice", "192.0.2.1")
        XCTAssertEqual(throttle.throttledDecisions(in: .userAndIP), 10)
    }

    func testTheWindowSlidesInsteadOfResettingAtFixedTimes() async throws {
        let throttle = throttle(window: 60, userAndIP: 3)
        await fail(throttle, "alice", "192.0.2.1")  // t = 0
        clock.advance(by: 40)
        await fail(throttle, "alice", "192.0.2.1")  // t = 40
        clock.advance(by: 10)
        await fail(throttle, "alice", "192.0.2.1")  // t = 50
        clock.advance(by: 9)  // t = 59: all three still count
        let refused = await refusal(throttle, "alice", "192.0.2.1")
        XCTAssertEqual(refused?.retryAfter, 1)
        clock.advance(by: 1)  // t = 60: the first left; a fixed window would have emptied at once
        await fail(throttle, "alice", "192.0.2.1")
        let later = await refusal(throttle, "alice", "192.0.2.1")
        XCTAssertEqual(later?.retryAfter, 40, "the failure at t = 40 goes at t = 100")
        clock.advance(by: 40)
        await fail(throttle, "alice", "192.0.2.1")
    }

    func testRetryAfterIsWholeSecondsRoundedUp() async throws {
        let throttle = throttle(window: 10, userAndIP: 1)
        await fail(throttle, "alice", "192.0.2.1")
        clock.advance(by: 7.2)
        let refused = await refusal(throttle, "alice", "192.0.2.1")
        XCTAssertEqual(refused?.retryAfter, 3)
        clock.advance(by: 2.7)
        let last = await refusal(throttle, "alice", "192.0.2.1")
        XCTAssertEqual(last?.retryAfter, 1, "never 0")
    }

    func testUserLimitCountsEveryAddress() async throws {
        let throttle = throttle(userAndIP: 5, user: 4, ip: 100)
        for host in 1...4 { await fail(throttle, "alice", "198.51.100.\(host)") }
        let refused = await refusal(throttle, "alice", "203.0.113.77")
        let error = try XCTUnwrap(refused)
        XCTAssertTrue(error.detail.contains("for this username;"), error.detail)
        XCTAssertEqual(throttle.throttledDecisions(in: .user), 1)
        await assertRefused(throttle, "alice", nil)
        await fail(throttle, "bob", "203.0.113.77")
    }

    func testIPLimitCountsEveryUsername() async throws {
        let throttle = throttle(userAndIP: 5, user: 20, ip: 3)
        for name in ["u1", "u2", "u3"] { await fail(throttle, name, "192.0.2.1") }
        let refused = await refusal(throttle, "u4", "192.0.2.1")
        let error = try XCTUnwrap(refused)
        XCTAssertTrue(error.detail.contains("from this address"), error.detail)
        XCTAssertEqual(throttle.throttledDecisions(in: .ip), 1)
        await fail(throttle, "u4", "192.0.2.2")
    }

    func testTheLongestWaitDecides() async throws {
        let throttle = throttle(window: 900, userAndIP: 2, user: 3)
        await fail(throttle, "alice", "198.51.100.1")  // t = 0: user
        clock.advance(by: 100)
        await fail(throttle, "alice", "192.0.2.1")  // t = 100: user, pair
        clock.advance(by: 100)
        await fail(throttle, "alice", "192.0.2.1")  // t = 200: user (full, frees at 900), pair (full, frees at 1000)
        let refused = await refusal(throttle, "alice", "192.0.2.1")
        let error = try XCTUnwrap(refused)
        XCTAssertEqual(error.retryAfter, 800)
        XCTAssertTrue(error.detail.contains("this username from this address"))
    }

    func testSuccessClearsOnlyThePair() async throws {
        let throttle = throttle(userAndIP: 3, user: 5, ip: 6)
        await fail(throttle, "alice", "192.0.2.1")
        await fail(throttle, "alice", "192.0.2.1")
        await fail(throttle, "bob", "192.0.2.1")
        await fail(throttle, "alice", "198.51.100.1")
        throttle.recordSuccess(try await throttle.admit(username: "alice", clientIP: "192.0.2.1"))
        // The pair starts afresh, but the username counter still holds alice's three failures
        // (two from here, one from elsewhere): two more fill it.
        await fail(throttle, "alice", "192.0.2.1")
        await fail(throttle, "alice", "192.0.2.1")
        let byUser = await refusal(throttle, "alice", "192.0.2.1")
        XCTAssertTrue(byUser?.detail.contains("for this username;") ?? false)
        // The address still holds its failures against alice and bob: one more fills it.
        await fail(throttle, "carol", "192.0.2.1")
        let byAddress = await refusal(throttle, "dave", "192.0.2.1")
        XCTAssertTrue(byAddress?.detail.contains("from this address") ?? false)
    }

    func testSuccessTakesBackItsOwnCount() async throws {
        let throttle = throttle(userAndIP: 5, user: 2, ip: 100)
        for _ in 0..<5 {
            throttle.recordSuccess(try await throttle.admit(username: "alice", clientIP: "192.0.2.1"))
        }
        await fail(throttle, "alice", "198.51.100.1")
        await fail(throttle, "alice", "198.51.100.2")
        await assertRefused(throttle, "alice", "198.51.100.3")
    }

    func testWithdrawnAttemptsDoNotCount() async throws {
        let throttle = throttle(userAndIP: 2)
        for _ in 0..<5 {
            throttle.withdraw(try await throttle.admit(username: "alice", clientIP: "192.0.2.1"))
        }
        XCTAssertEqual(throttle.trackedKeys(in: .userAndIP), 0)
        await fail(throttle, "alice", "192.0.2.1")
        await fail(throttle, "alice", "192.0.2.1")
        await assertRefused(throttle, "alice", "192.0.2.1")
    }

    /// Polls (yielding, never sleeping) until `condition` holds.
    func eventually(_ what: String, file: StaticString = #filePath, line: UInt = #line, _ condition: () -> Bool) async {
        for _ in 0..<1_000_000 {
            if condition() { return }
            await Task.yield()
        }
        XCTFail("never: \(what)", file: file, line: line)
    }

    func testAttemptsInFlightHoldTheBudgetAndTheNextOneWaits() async throws {
        let throttle = throttle(userAndIP: 3)
        // Three guesses sent at once, none finished: a fourth must not reach the password yet.
        let inFlight = try await withThrowingTaskGroup(of: LoginAttempt.self) { group in
            for _ in 0..<3 { group.addTask { try await throttle.admit(username: "alice", clientIP: "192.0.2.1") } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(throttle.attemptsInFlight, 3)
        let fourth = Task { try await throttle.admit(username: "alice", clientIP: "192.0.2.1") }
        await eventually("the fourth waits") { throttle.waitingAttempts == 1 }
        XCTAssertEqual(throttle.attemptsInFlight, 3, "waiting, not admitted")
        // One in flight turns out a right password: the waiting attempt takes its place.
        throttle.recordSuccess(inFlight[0])
        let admitted = try await fourth.value
        XCTAssertEqual(throttle.attemptsInFlight, 3)
        XCTAssertEqual(throttle.waitingAttempts, 0)
        XCTAssertEqual(throttle.recordFailure(inFlight[1]), [])
        XCTAssertEqual(throttle.recordFailure(inFlight[2]), [])
        XCTAssertEqual(throttle.recordFailure(admitted), [.userAndIP], "the third failure fills the pair")
        await assertRefused(throttle, "alice", "192.0.2.1")
    }

    func testSixteenRightPasswordsAtOnceAllGetIn() async throws {
        let throttle = throttle(userAndIP: 5)
        let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    let attempt = try await throttle.admit(username: "alice", clientIP: "192.0.2.1")
                    await Task.yield()  // the hash
                    throttle.recordSuccess(attempt)
                    return true
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        XCTAssertEqual(admitted, 16)
        XCTAssertEqual(throttle.throttledDecisions(in: .userAndIP), 0)
        XCTAssertEqual(throttle.attemptsInFlight, 0)
    }

    func testAFloodOfWrongPasswordsIsRefusedOnceTheBudgetHasFailed() async throws {
        let throttle = throttle(window: 900, userAndIP: 3)
        var inFlight: [LoginAttempt] = []
        for _ in 0..<3 { inFlight.append(try await throttle.admit(username: "alice", clientIP: "192.0.2.1")) }
        let flood = (0..<10).map { _ in
            Task { () -> BrokerError? in
                do {
                    let attempt = try await throttle.admit(username: "alice", clientIP: "192.0.2.1")
                    throttle.recordFailure(attempt)
                    return nil
                } catch {
                    return error as? BrokerError
                }
            }
        }
        await eventually("the flood waits") { throttle.waitingAttempts == 10 }
        clock.advance(by: 100)
        for attempt in inFlight { throttle.recordFailure(attempt) }
        for guess in flood {
            let error = await guess.value
            XCTAssertEqual(error?.code, .tooManyAttempts, "only three wrong passwords are evaluated")
            XCTAssertEqual(error?.retryAfter, 900)
        }
        XCTAssertEqual(throttle.throttledDecisions(in: .userAndIP), 10)
        XCTAssertEqual(throttle.attemptsInFlight, 0)
        XCTAssertEqual(throttle.waitingAttempts, 0)
    }

    func testTheQueueIsBoundedInLength() async throws {
        let throttle = LoginThrottle(
            policy: LoginThrottlePolicy(userAndIPLimit: 1, queueLength: 2), clock: clock, counting: .inProcess)
        let first = try await throttle.admit(username: "alice", clientIP: "192.0.2.1")
        let waiting = (0..<2).map { _ in
            Task { throttle.recordSuccess(try await throttle.admit(username: "alice", clientIP: "192.0.2.1")) }
        }
        await eventually("two wait") { throttle.waitingAttempts == 2 }
        let error = await refusal(throttle, "alice", "192.0.2.1")
        XCTAssertEqual(error?.retryAfter, 1)
        XCTAssertTrue(error?.detail.contains("still being checked") ?? false, error?.detail ?? "")
        // The waiting ones go in turn, each once the one before has succeeded.
        throttle.recordSuccess(first)
        for task in waiting { try await task.value }
        XCTAssertEqual(throttle.attemptsInFlight, 0)
    }

    func testTheQueueIsBoundedInTime() async throws {
        let throttle = LoginThrottle(
            policy: LoginThrottlePolicy(userAndIPLimit: 1, queueWait: .milliseconds(20)), clock: clock, counting: .inProcess)
        let stuck = try await throttle.admit(username: "alice", clientIP: "192.0.2.1")
        let error = await refusal(throttle, "alice", "192.0.2.1")
        XCTAssertEqual(error?.retryAfter, 1)
        XCTAssertEqual(throttle.waitingAttempts, 0)
        throttle.withdraw(stuck)
        await fail(throttle, "alice", "192.0.2.1")
    }

    func testACancelledWaiterLeavesTheQueue() async throws {
        let throttle = throttle(userAndIP: 1)
        let first = try await throttle.admit(username: "alice", clientIP: "192.0.2.1")
        let waiter = Task { try await throttle.admit(username: "alice", clientIP: "192.0.2.1") }
        await eventually("it waits") { throttle.waitingAttempts == 1 }
        waiter.cancel()
        do {
            _ = try await waiter.value
            XCTFail("a cancelled waiter is not admitted")
        } catch is CancellationError {}
        XCTAssertEqual(throttle.waitingAttempts, 0)
        XCTAssertEqual(throttle.attemptsInFlight, 1)
        throttle.withdraw(first)
    }

    func testSettlingTwiceChangesNothing() async throws {
        let throttle = throttle(userAndIP: 2)
        let attempt = try await throttle.admit(username: "alice", clientIP: "192.0.2.1")
        XCTAssertEqual(throttle.recordFailure(attempt), [])
        XCTAssertEqual(throttle.recordFailure(attempt), [], "not counted twice")
        throttle.withdraw(attempt)
        await fail(throttle, "alice", "192.0.2.1")
        await assertRefused(throttle, "alice", "192.0.2.1")
    }

    func testEverythingResetsAfterTheWindow() async throws {
        let throttle = throttle(window: 900, userAndIP: 1, user: 2, ip: 3)
        await fail(throttle, "alice", "192.0.2.1")
        await fail(throttle, "alice", "192.0.2.2")
        await fail(throttle, "bob", "192.0.2.3")
        await assertRefused(throttle, "alice", "192.0.2.4")
        clock.advance(by: 900)
        await fail(throttle, "alice", "192.0.2.1")
        await fail(throttle, "alice", "192.0.2.2")
    }

    func testIPv6AddressesCountByTheirSlash64() async throws {
        let throttle = throttle(userAndIP: 2, user: 100, ip: 3)
        await fail(throttle, "u1", "2001:db8:1:2::1")
        await fail(throttle, "u2", "2001:db8:1:2:ffff:ffff:ffff:ffff")
        await fail(throttle, "u3", "2001:db8:1:2:abcd::9")
        await assertRefused(throttle, "u4", "2001:db8:1:2::4242")
        await fail(throttle, "u4", "2001:db8:1:3::1")
        // The pair counts the /64 too: a fresh address in it is no fresh start.
        await fail(throttle, "alice", "2001:db8:9:9::1")
        await fail(throttle, "alice", "2001:db8:9:9::2")
        await assertRefused(throttle, "alice", "2001:db8:9:9::3")
    }

    func testIPv4MappedAddressesCountAsIPv4() async throws {
        let throttle = throttle(userAndIP: 5, user: 100, ip: 2)
        await fail(throttle, "u1", "192.0.2.1")
        await fail(throttle, "u2", "::ffff:192.0.2.1")
        await assertRefused(throttle, "u3", "192.0.2.1")
    }

    func testTrackedKeysStayBoundedAndLiveKeysAreNeverForgotten() async throws {
        let throttle = throttle(window: 900, userAndIP: 1, user: 1, ip: 1_000_000, maximumTrackedKeys: 10)
        for index in 0..<10 {
            await fail(throttle, "flood\(index)", nil)
            clock.advance(by: 1)
        }
        await fail(throttle, "victim", nil)  // the table is full: the overflow key counts it
        XCTAssertLessThanOrEqual(throttle.trackedKeys(in: .user), 10)
        await assertRefused(throttle, "victim", nil)
        await assertRefused(throttle, "flood9", nil)
        await assertRefused(throttle, "flood0", nil)  // the oldest is not forgotten while its failure counts

        for index in 0..<1000 {
            if let attempt = try? await throttle.admit(username: "random\(index)", clientIP: "198.51.100.\(index % 200)") {
                throttle.recordFailure(attempt)
            }
            XCTAssertLessThanOrEqual(throttle.trackedKeys(in: .user), 10)
            XCTAssertLessThanOrEqual(throttle.trackedKeys(in: .userAndIP), 10)
            XCTAssertLessThanOrEqual(throttle.trackedKeys(in: .ip), 10)
        }
    }

    func testExpiredKeysAreForgottenBeforeFreshOnes() async throws {
        let throttle = throttle(window: 60, user: 1, maximumTrackedKeys: 4)
        await fail(throttle, "old1", nil)
        await fail(throttle, "old2", nil)
        clock.advance(by: 120)
        await fail(throttle, "new1", nil)
        await fail(throttle, "new2", nil)
        await fail(throttle, "new3", nil)  // full: the expired go, the fresh stay
        XCTAssertEqual(throttle.trackedKeys(in: .user), 3)
        for name in ["new1", "new2", "new3"] { await assertRefused(throttle, name, nil) }
    }

    func testHugeUsernamesAreKeptAsDigests() async throws {
        let throttle = throttle(userAndIP: 1)
        let huge = String(repeating: "x", count: 60_000)
        await fail(throttle, huge, "192.0.2.1")
        await assertRefused(throttle, huge, "192.0.2.1")
        await fail(throttle, huge + "y", "192.0.2.1")
    }
}
