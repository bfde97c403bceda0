import BrokerCore
import Foundation
import XCTest

/// Issue 10.4: a flood of other usernames must not push a throttled account's counter out of the
/// bounded table and so start it afresh. On a manual clock: guesses are counted, not timed.
final class ThrottleEvictionTests: XCTestCase {
    let clock = ManualWallClock(Date(timeIntervalSince1970: 1_800_000_000))

    func throttle(
        window: Int = 900, userAndIP: Int = 1_000_000, user: Int = 20, ip: Int = 1_000_000, maximumTrackedKeys: Int
    ) -> LoginThrottle {
        LoginThrottle(
            policy: LoginThrottlePolicy(
                window: window, userAndIPLimit: userAndIP, userLimit: user, ipLimit: ip,
                maximumTrackedKeys: maximumTrackedKeys),
            clock: clock, counting: .inProcess)
    }

    /// One wrong password if the throttle lets it be evaluated; whether it did.
    func guess(_ throttle: LoginThrottle, _ username: String, _ clientIP: String?) async -> Bool {
        guard let attempt = try? await throttle.admit(username: username, clientIP: clientIP) else { return false }
        throttle.recordFailure(attempt)
        return true
    }

    func assertEvaluated(
        _ throttle: LoginThrottle, _ username: String, _ clientIP: String?, file: StaticString = #filePath, line: UInt = #line
    ) async {
        let evaluated = await guess(throttle, username, clientIP)
        XCTAssertTrue(evaluated, "\(username) was refused", file: file, line: line)
    }

    func assertRefused(
        _ throttle: LoginThrottle, _ username: String, _ clientIP: String?, file: StaticString = #filePath, line: UInt = #line
    ) async -> BrokerError? {
        do {
            _ = try await throttle.admit(username: username, clientIP: clientIP)
            XCTFail("\(username) was admitted", file: file, line: line)
            return nil
        } catch let error as BrokerError {
            XCTAssertEqual(error.code, .tooManyAttempts, file: file, line: line)
            return error
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
            return nil
        }
    }

    /// The attack of the issue: a guess at the target from a fresh address (so that only the
    /// per-username counter stands in the way), then a flood of fresh usernames, over and over for
    /// two hours. The documented ceiling holds: at most 20 guesses evaluated in any 900 s, so at
    /// most 80 in any hour.
    func testAFloodOfOtherUsernamesNeverStartsATargetAfresh() async {
        let throttle = throttle(maximumTrackedKeys: 50)
        var evaluated: [Double] = []
        var address = 0
        var floodName = 0
        for _ in 0..<(2 * 3600 / 30) {
            address += 1
            if await guess(throttle, "alice", "10.\(address / 65536).\(address / 256 % 256).\(address % 256)") {
                evaluated.append(clock.now().timeIntervalSince1970)
            }
            for _ in 0..<60 {
                floodName += 1
                address += 1
                _ = await guess(throttle, "flood\(floodName)", "10.\(address / 65536).\(address / 256 % 256).\(address % 256)")
            }
            XCTAssertLessThanOrEqual(throttle.trackedKeys(in: .user), 50)
            clock.advance(by: 30)
        }
        XCTAssertGreaterThan(evaluated.count, 20, "the window moved on: guessing resumed")
        for start in evaluated {
            XCTAssertLessThanOrEqual(evaluated.filter { $0 >= start && $0 < start + 900 }.count, 20, "in 900 s from \(start)")
            XCTAssertLessThanOrEqual(evaluated.filter { $0 >= start && $0 < start + 3600 }.count, 80, "in an hour from \(start)")
        }
    }

    /// Refused attempts cost the attacker nothing: the target is refused however many keys pass.
    func testAThrottledKeyStaysThrottledThroughAFullTable() async throws {
        let throttle = throttle(window: 900, userAndIP: 1, user: 1, maximumTrackedKeys: 10)
        await assertEvaluated(throttle, "victim", nil)
        for index in 0..<1000 {
            clock.advance(by: 0.5)
            _ = await guess(throttle, "flood\(index)", "198.51.100.\(index % 200)")
            XCTAssertLessThanOrEqual(throttle.trackedKeys(in: .user), 10)
            XCTAssertLessThanOrEqual(throttle.trackedKeys(in: .userAndIP), 10)
            XCTAssertLessThanOrEqual(throttle.trackedKeys(in: .ip), 10)
        }
        _ = await assertRefused(throttle, "victim", nil)
        _ = await assertRefused(throttle, "victim", "203.0.113.1")
        clock.advance(by: 399)
        _ = await assertRefused(throttle, "victim", nil)
        clock.advance(by: 600)  // the victim's failure and the overflow's have left the window
        await assertEvaluated(throttle, "victim", nil)
    }

    /// When every place holds a failure inside the window, new keys share one overflow key with
    /// the counter's limit; a key that gets a place while the overflow still holds failures starts
    /// with them. So new usernames are refused sooner under a flood, never later.
    func testNewKeysShareALimitedOverflowWhileTheTableIsFull() async throws {
        let throttle = throttle(window: 900, user: 2, maximumTrackedKeys: 4)
        for name in ["a", "b", "c", "d"] {
            await assertEvaluated(throttle, name, nil)
            await assertEvaluated(throttle, name, nil)
        }
        clock.advance(by: 10)
        await assertEvaluated(throttle, "x", nil)
        await assertEvaluated(throttle, "y", nil)
        XCTAssertEqual(throttle.overflowFailures(in: .user), 2)
        XCTAssertEqual(throttle.trackedKeys(in: .user), 4)
        _ = await assertRefused(throttle, "z", nil)
        _ = await assertRefused(throttle, "x", nil)
        for name in ["a", "b", "c", "d"] { _ = await assertRefused(throttle, name, nil) }

        clock.advance(by: 895)  // a–d's failures have left the window, x and y's (in the overflow) not
        let refusal = await assertRefused(throttle, "x", nil)
        XCTAssertEqual(refusal?.retryAfter, 5, "x may have failed twice in the overflow: it waits for those to leave")
        _ = await assertRefused(throttle, "w", nil)
        _ = await assertRefused(throttle, "a", nil)
        clock.advance(by: 5)
        await assertEvaluated(throttle, "x", nil)
        await assertEvaluated(throttle, "a", nil)
        XCTAssertEqual(throttle.trackedKeys(in: .user), 2)
    }

    /// Attempts in flight hold the overflow key too: two fresh usernames at once with one
    /// failure left in it are evaluated one after the other, not both.
    func testAttemptsInFlightHoldTheOverflowKey() async throws {
        let throttle = throttle(window: 900, user: 1, maximumTrackedKeys: 2)
        for name in ["a", "b"] { await assertEvaluated(throttle, name, nil) }
        let first = try await throttle.admit(username: "x", clientIP: nil)
        let second = Task { try await throttle.admit(username: "y", clientIP: nil) }
        while throttle.waitingAttempts == 0 && throttle.attemptsInFlight < 2 { await Task.yield() }
        throttle.recordFailure(first)
        do {
            _ = try await second.value
            XCTFail("y was admitted beside x although the overflow key had room for one failure")
        } catch let error as BrokerError {
            XCTAssertEqual(error.code, .tooManyAttempts)
        }
    }

    func testGitHubLoginsFromOtherAddressesNeverFreeAThrottledAddress() async throws {
        let throttle = GitHubLoginThrottle(
            policy: GitHubLoginThrottlePolicy(window: 60, addressLimit: 2, maximumTrackedKeys: 10), clock: clock,
            counting: .inProcess)
        try await throttle.admit(clientIP: "203.0.113.1")
        try await throttle.admit(clientIP: "203.0.113.1")
        for index in 0..<200 {
            clock.advance(by: 0.1)
            _ = try? await throttle.admit(clientIP: "198.51.100.\(index)")
            XCTAssertLessThanOrEqual(throttle.trackedKeys, 10)
        }
        await XCTAssertThrowsErrorAsync(try await throttle.admit(clientIP: "203.0.113.1"))
        clock.advance(by: 39)
        await XCTAssertThrowsErrorAsync(try await throttle.admit(clientIP: "203.0.113.1"))
        clock.advance(by: 11)  // its attempts and the overflow's have left the window
        try await throttle.admit(clientIP: "203.0.113.1")
    }

    func testTheTableSizeComesFromTheConfiguration() throws {
        var configuration = BrokerConfiguration()
        try configuration.set("login_throttle_tracked_keys", to: "500", source: "test")
        XCTAssertEqual(LoginThrottlePolicy(configuration).maximumTrackedKeys, 500)
        XCTAssertEqual(GitHubLoginThrottlePolicy(configuration).maximumTrackedKeys, 500)
        XCTAssertThrowsError(try configuration.set("login_throttle_tracked_keys", to: "0", source: "test"))
    }
}
