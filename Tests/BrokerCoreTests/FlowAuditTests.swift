import BrokerCore
import Foundation
import XCTest

/// The core services audit their own flows: a caller that is not a route (here, the test)
/// gets the same lines as a request over HTTP, request id and client address included.
final class FlowAuditTests: XCTestCase {
    private var harness: CoreHarness!
    private let sink = InMemoryAuditSink()
    private let origin = AuditContext(requestID: "r-core-1", clientIP: "192.0.2.7")

    override func setUp() async throws {
        harness = try await CoreHarness.make(auditSink: sink)
        try await harness.seed()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    /// The lines of `action` written so far.
    private func lines(_ action: AuditAction) -> [AuditEvent] {
        sink.events.filter { $0.action == action }
    }

    func testAPasswordLoginCalledDirectlyWritesItsSuccessLine() async throws {
        let bundle = try await harness.services.orgTokens.login(
            username: "ALICE", password: CoreHarness.password, organization: "org1", context: origin)
        let line = try XCTUnwrap(lines(.loginPassword).first)
        XCTAssertEqual(lines(.loginPassword).count, 1)
        XCTAssertEqual(line.outcome, .success)
        XCTAssertEqual(line.actor, "alice")
        XCTAssertEqual(line.organization, "org1")
        XCTAssertEqual(line.session, bundle.claims.sessionID)
        XCTAssertEqual(line.target, "jti:\(bundle.claims.tokenID)")
        XCTAssertEqual(line.requestID, "r-core-1")
        XCTAssertEqual(line.clientIP, "192.0.2.7")
        XCTAssertNil(line.reason)
        XCTAssertTrue(AuditAction.catalogue.first { $0.action == .loginPassword }!.admits(line))
    }

    func testARefusedPasswordLoginCalledDirectlyWritesItsRefusal() async throws {
        await XCTAssertBrokerError(.invalidCredentials) {
            try await self.harness.services.orgTokens.login(
                username: "alice", password: "not the password", organization: "org1", context: self.origin)
        }
        await XCTAssertBrokerError(.invalidCredentials) {
            try await self.harness.services.orgTokens.login(
                username: "hunter2-typed-as-name", password: "x", organization: "org1", context: self.origin)
        }
        let refusals = lines(.loginPassword)
        XCTAssertEqual(refusals.map(\.outcome), [.failure, .failure])
        XCTAssertEqual(refusals.map(\.reason), ["invalid_credentials", "invalid_credentials"])
        XCTAssertEqual(refusals[0].actor, "alice")
        // A name that is no account is only hashed, as over HTTP.
        XCTAssertEqual(refusals[1].actor, harness.services.attemptedUsernames.pseudonym("hunter2-typed-as-name"))
        XCTAssertEqual(refusals.map(\.clientIP), ["192.0.2.7", "192.0.2.7"])
    }

    func testARefreshAndItsReuseCalledDirectlyAreAudited() async throws {
        let services = harness.services
        let first = try await services.orgTokens.login(
            username: "alice", password: CoreHarness.password, organization: "org1", context: origin)
        let second = try await services.orgTokens.refresh(first.refresh, context: origin)
        let renewal = try XCTUnwrap(lines(.tokenRefresh).first)
        XCTAssertEqual(renewal.outcome, .success)
        XCTAssertEqual(renewal.actor, "alice")
        XCTAssertEqual(renewal.session, first.claims.sessionID)
        XCTAssertEqual(renewal.target, "jti:\(second.claims.tokenID)")
        XCTAssertEqual(renewal.requestID, "r-core-1")

        // Past the grace window, the used token again: the session is revoked and the line says so.
        harness.clock.advance(by: 10)
        await XCTAssertBrokerError(.refreshTokenReused) {
            try await services.orgTokens.refresh(first.refresh, context: self.origin)
        }
        let reuse = try XCTUnwrap(lines(.refreshReuseDetected).first)
        XCTAssertEqual(lines(.refreshReuseDetected).count, 1)
        XCTAssertEqual(reuse.outcome, .denied)
        XCTAssertEqual(reuse.actor, "alice")
        XCTAssertEqual(reuse.organization, "org1")
        XCTAssertEqual(reuse.session, first.claims.sessionID)
        XCTAssertEqual(reuse.target, AuditEvent.tokenReference(first.refresh))
        XCTAssertEqual(reuse.reason, "refresh_token_reused")
        XCTAssertEqual(lines(.tokenRefresh).count, 1, "the reuse is not also a token.refresh line")
    }

    func testALogoutAndASessionSignInCalledDirectlyAreAudited() async throws {
        let services = harness.services
        let bundle = try await services.orgTokens.login(
            username: "alice", password: CoreHarness.password, organization: "org1", context: origin)
        try await services.orgTokens.revoke(bundle.refresh, context: origin)
        let logout = try XCTUnwrap(lines(.sessionRevoke).first)
        XCTAssertEqual(logout.outcome, .success)
        XCTAssertEqual(logout.reason, "logout")
        XCTAssertEqual(logout.session, bundle.claims.sessionID)

        await XCTAssertBrokerError(.invalidCredentials) {
            try await services.sessions.signIn(username: "bob", password: "wrong", context: self.origin)
        }
        _ = try await services.sessions.signIn(username: "bob", password: CoreHarness.password, context: origin)
        XCTAssertEqual(lines(.sessionLogin).map(\.outcome), [.failure, .success])
        XCTAssertEqual(lines(.sessionLogin).map(\.actor), ["bob", "bob"])
    }

    func testInClosedModeATokenWhoseLineCannotBeWrittenIsNotHandedOut() async throws {
        sink.setFailing(true)
        await XCTAssertBrokerError(.auditUnavailable) {
            try await self.harness.services.orgTokens.login(
                username: "alice", password: CoreHarness.password, organization: "org1", context: self.origin)
        }
        XCTAssertEqual(lines(.loginPassword), [])
    }
}
