import BrokerCore
import Foundation
import XCTest

/// What `PasswordAuthenticator` counts as a failed login, and what it does not.
final class PasswordThrottlingTests: XCTestCase {
    var harness: CoreHarness!

    override func setUp() async throws {
        harness = try await CoreHarness.make { configuration in
            configuration.loginThrottleUserIP = 2
            configuration.loginThrottleUser = 3
        }
        try await harness.seed()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    var authenticator: PasswordAuthenticator { harness.services.orgTokens.authenticator }

    func login(_ username: String, _ password: String, from clientIP: String? = "192.0.2.1") async throws -> User {
        try await authenticator.authenticate(username: username, password: password, clientIP: clientIP)
    }

    func testUnknownUsersCountLikeWrongPasswords() async throws {
        for _ in 0..<2 {
            await XCTAssertBrokerError(.invalidCredentials) { try await self.login("nobody", "some guess 123") }
        }
        await XCTAssertBrokerError(.tooManyAttempts) { try await self.login("nobody", "some guess 123") }
    }

    func testARightPasswordOnADisabledAccountIsNoGuess() async throws {
        try await harness.services.accounts.setActive("alice", false, by: .operator)
        for _ in 0..<5 {
            await XCTAssertBrokerError(.accountDisabled) { try await self.login("alice", CoreHarness.password) }
        }
        // A wrong password on it still is.
        for _ in 0..<2 {
            await XCTAssertBrokerError(.invalidCredentials) { try await self.login("alice", "wrong password!!") }
        }
        await XCTAssertBrokerError(.tooManyAttempts) { try await self.login("alice", CoreHarness.password) }
    }

    func testARightPasswordClearsThePairOnly() async throws {
        for _ in 0..<2 {
            await XCTAssertBrokerError(.invalidCredentials) { try await self.login("alice", "wrong password!!") }
        }
        await XCTAssertBrokerError(.tooManyAttempts) { try await self.login("alice", CoreHarness.password) }
        let elsewhere = try await login("alice", CoreHarness.password, from: "198.51.100.1")
        XCTAssertEqual(elsewhere.username, "alice")
        // Still throttled from the first address: the success was elsewhere.
        await XCTAssertBrokerError(.tooManyAttempts) { try await self.login("alice", CoreHarness.password) }
        // The username keeps its two failures: one more from anywhere fills it.
        await XCTAssertBrokerError(.invalidCredentials) {
            try await self.login("alice", "wrong password!!", from: "198.51.100.2")
        }
        await XCTAssertBrokerError(.tooManyAttempts) {
            try await self.login("alice", CoreHarness.password, from: "198.51.100.3")
        }
    }

    func testWithoutAClientIPTheUsernameLimitStillApplies() async throws {
        for _ in 0..<3 {
            await XCTAssertBrokerError(.invalidCredentials) { try await self.login("alice", "wrong password!!", from: nil) }
        }
        await XCTAssertBrokerError(.tooManyAttempts) { try await self.login("alice", CoreHarness.password, from: nil) }
        await XCTAssertBrokerError(.tooManyAttempts) {
            try await self.harness.services.orgTokens.login(username: "alice", password: CoreHarness.password, organization: "org1")
        }
        harness.clock.advance(by: 900)
        let user = try await login("alice", CoreHarness.password, from: nil)
        XCTAssertEqual(user.username, "alice")
    }
}
