import BrokerCore
import Foundation
import XCTest

/// A refused renewal says whose session it concerned (``BrokerError/session``), so that its audit
/// line can name the account, the organization and the session: for a reused token, a revoked
/// or expired session, a credential change and a disabled account; never for a token the broker
/// does not know.
final class RefreshRefusalSessionTests: SeededCoreTestCase {
    func refusal(_ presented: String) async -> BrokerError? {
        do {
            _ = try await harness.services.orgTokens.refresh(presented)
            return nil
        } catch {
            return error as? BrokerError
        }
    }

    func login() async throws -> (bundle: TokenBundle, session: AuditedSession) {
        let bundle = try await harness.services.orgTokens.login(
            username: "alice", password: CoreHarness.password, organization: "org1")
        return (bundle, AuditedSession(username: "alice", organization: "org1", sessionID: bundle.claims.sessionID))
    }

    func testReuseAndTheRevokedSessionAfterItNameTheSession() async throws {
        let (first, session) = try await login()
        let second = try await harness.services.orgTokens.refresh(first.refresh)
        harness.clock.advance(by: 5)
        let reuse = await refusal(first.refresh)
        XCTAssertEqual(reuse?.code, .refreshTokenReused)
        XCTAssertEqual(reuse?.session, session)
        XCTAssertNotNil(session.sessionID)
        let afterwards = await refusal(second.refresh)
        XCTAssertEqual(afterwards?.code, .invalidRefreshToken)
        XCTAssertEqual(afterwards?.session, session)
    }

    func testCredentialChangeDisabledAccountAndExpiryNameTheSession() async throws {
        let accounts = harness.services.accounts
        let (reset, resetSession) = try await login()
        try await accounts.setPassword("alice", password: "another long passphrase 42", by: .operator)
        let afterReset = await refusal(reset.refresh)
        XCTAssertEqual(afterReset?.session, resetSession, "a session ended by a password reset")

        let (disabled, disabledSession) = try await harness.services.orgTokens.login(
            username: "alice", password: "another long passphrase 42", organization: "org1"
        ).withSession("alice", "org1")
        try await accounts.setActive("alice", false, by: .operator)
        let refused = await refusal(disabled.refresh)
        XCTAssertEqual(refused?.code, .accountDisabled)
        XCTAssertEqual(refused?.session, disabledSession)
        try await accounts.setActive("alice", true, by: .operator)

        let (expiring, expiringSession) = try await harness.services.orgTokens.login(
            username: "alice", password: "another long passphrase 42", organization: "org1"
        ).withSession("alice", "org1")
        harness.clock.advance(by: 86_400 * 8)
        let expired = await refusal(expiring.refresh)
        XCTAssertEqual(expired?.code, .sessionExpired)
        XCTAssertEqual(expired?.session, expiringSession, "an expired session")
    }

    func testAnUnknownTokenNamesNoSessionAndLogoutSaysWhoseItWas() async throws {
        let unknown = await refusal("not-a-refresh-token")
        XCTAssertEqual(unknown?.code, .invalidRefreshToken)
        XCTAssertNil(unknown?.session)
        let (bundle, session) = try await login()
        let ended = try await harness.services.orgTokens.revoke(bundle.refresh)
        XCTAssertEqual(ended, session)
    }
}

extension TokenBundle {
    fileprivate func withSession(_ username: String, _ organization: String) -> (TokenBundle, AuditedSession) {
        (self, AuditedSession(username: username, organization: organization, sessionID: claims.sessionID))
    }
}
