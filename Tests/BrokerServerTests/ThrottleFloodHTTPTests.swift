import BrokerCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// Issue 10.4 over a real loopback socket: guesses at one account from ever new addresses, each
/// followed by a flood of other usernames big enough to fill the throttle's table. The flood
/// must not start the account's counter afresh: at most `login_throttle_user` guesses are
/// evaluated in any window.
final class ThrottleFloodHTTPTests: XCTestCase {
    static func address(_ number: Int) -> String {
        "10.\(number / 65536 % 256).\(number / 256 % 256).\(number % 256)"
    }

    func testAFloodOfUsernamesDoesNotStartAThrottledAccountAfresh() async throws {
        let harness = try await ServerHarness.make { configuration in
            configuration.trustedProxies = ["127.0.0.1"]
            configuration.loginThrottleTrackedKeys = 10
            // Only the per-username counter stands between the guesser and the account: the pairs
            // and addresses are fresh each time anyway, and their overflow keys would refuse sooner.
            configuration.loginThrottleUserIP = 1_000_000
            configuration.loginThrottleIP = 1_000_000
        }
        let evaluated = try await harness.withClient { client in
            var evaluated: [Double] = []
            var address = 0
            for step in 0..<60 {
                address += 1
                let guess = try await ThrottleHTTPTests.post(
                    client, "alice", ThrottleHTTPTests.wrongPassword, forwardedFor: Self.address(address))
                if guess.status == .unauthorized {
                    evaluated.append(harness.clock.now().timeIntervalSince1970)
                } else {
                    XCTAssertEqual(guess.status, .tooManyRequests)
                    XCTAssertTrue((guess.body["detail"] as? String)?.contains("for this username;") ?? false, guess.text)
                }
                for flood in 0..<15 {
                    address += 1
                    let answer = try await ThrottleHTTPTests.post(
                        client, "flood\(address)-\(flood)", ThrottleHTTPTests.wrongPassword,
                        forwardedFor: Self.address(address))
                    XCTAssertTrue([.unauthorized, .tooManyRequests].contains(answer.status), "\(answer.status)")
                }
                if step == 30 {
                    // Throttled through the floods: the right password is not even looked at.
                    address += 1
                    let right = try await ThrottleHTTPTests.post(
                        client, "alice", ServerHarness.password, forwardedFor: Self.address(address))
                    XCTAssertEqual(right.status, .tooManyRequests)
                }
                harness.clock.advance(by: 20)
            }
            return evaluated
        }
        XCTAssertEqual(evaluated.prefix(20).count, 20)
        for start in evaluated {
            let inWindow = evaluated.filter { $0 >= start && $0 < start + 900 }.count
            XCTAssertLessThanOrEqual(inWindow, 20, "guesses evaluated in the 900 s from \(start)")
        }
        XCTAssertLessThanOrEqual(harness.services.loginThrottle.trackedKeys(in: .user), 10)
        XCTAssertGreaterThan(harness.services.loginThrottle.throttledDecisions(in: .user), 0)
        try await harness.shutdown()
    }
}
