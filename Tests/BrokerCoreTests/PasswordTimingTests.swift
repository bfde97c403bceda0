import BrokerCore
import BrokerCrypto
import Foundation
import XCTest

/// A failed password login answers no sooner than `login_failure_floor_ms`, whatever the
/// account: unknown, today's argon2id, an older argon2 cost, an imported PBKDF2 hash. Only the
/// lower bound is asserted (a deterministic promise); the distributions are measured by
/// `broker-bench timing` (BENCHMARKS.md), not by a test.
final class PasswordTimingTests: XCTestCase {
    static let floor = Duration.milliseconds(150)

    func testFailedLoginsAnswerNoSoonerThanTheFloorWhateverTheAccount() async throws {
        let harness = try await CoreHarness.make { $0.loginFailureFloorMilliseconds = 150 }
        try await harness.seed()
        let accounts = harness.services.accounts
        let imported = [
            ("oldcost", try PasswordHasher(parameters: Argon2idParameters(memoryKiB: 128, iterations: 3, parallelism: 2)).hash("x")),
            ("imported", "pbkdf2_sha256$1000$seasalt$\(Data(SecureRandom.bytes(32)).base64EncodedString())"),
        ]
        for (username, hash) in imported {
            let user = try await accounts.addUser(username, password: nil, by: .operator)
            try await harness.services.store.transaction { tx in try await tx.updatePasswordHash(userID: user.id, to: hash) }
        }
        let authenticator = harness.services.orgTokens.authenticator
        for username in ["nobody", "alice", "oldcost", "imported", "bob"] {
            let started = ContinuousClock.now
            await XCTAssertBrokerError(.invalidCredentials) {
                try await authenticator.authenticate(username: username, password: "wrong password!!", clientIP: "192.0.2.\(username.count)")
            }
            XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, Self.floor, username)
        }
        // The padding does not hold the throttle's budget: the failures were counted.
        XCTAssertEqual(harness.services.loginThrottle.attemptsInFlight, 0)
        let user = try await authenticator.authenticate(username: "alice", password: CoreHarness.password, clientIP: "192.0.2.9")
        XCTAssertEqual(user.username, "alice")
        try await harness.shutdown()
    }

    func testTheFloorIsConfigurable() throws {
        var configuration = BrokerConfiguration()
        XCTAssertEqual(configuration.loginFailureFloorMilliseconds, 1000, "on by default")
        try configuration.set("login_failure_floor_ms", to: "250", source: "test")
        XCTAssertEqual(configuration.loginFailureFloorMilliseconds, 250)
        XCTAssertThrowsError(try configuration.set("login_failure_floor_ms", to: "-1", source: "test"))
        XCTAssertThrowsError(try configuration.set("login_failure_floor_ms", to: "60001", source: "test"))
    }
}
