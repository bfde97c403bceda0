import BrokerCore
import Foundation
import XCTest

/// Transaction bodies have no effect outside the store: run twice (the first run rolled back,
/// as a retried serialization failure is), a flow writes one audit line, counts once and gives
/// the same result.
final class RerunnableTransactionTests: XCTestCase {
    private var harness: CoreHarness!
    private let sink = InMemoryAuditSink()

    override func setUp() async throws {
        harness = try await CoreHarness.make(auditSink: sink, wrapStore: { RerunningStore($0) })
        try await harness.seed()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    private func count(_ action: AuditAction, _ outcome: AuditOutcome = .success) -> Int {
        sink.events.filter { $0.action == action && $0.outcome == outcome }.count
    }

    func testALoginAndARefreshWriteOneLineEachAndTheirTokensWork() async throws {
        let services = harness.services
        let first = try await services.orgTokens.login(username: "alice", password: CoreHarness.password, organization: "org1")
        XCTAssertEqual(count(.loginPassword), 1)
        let second = try await services.orgTokens.refresh(first.refresh)
        XCTAssertEqual(count(.tokenRefresh), 1)
        // The successor handed out is the one the store kept: it renews in turn.
        let third = try await services.orgTokens.refresh(second.refresh)
        XCTAssertEqual(count(.tokenRefresh), 2)
        XCTAssertEqual(third.claims.sessionID, first.claims.sessionID)
        let families = try await harness.services.store.read { tx in
            try await tx.refreshFamilies(userID: try await tx.user(named: "alice")!.id)
        }
        XCTAssertEqual(families.count, 1, "the rolled-back first run left a session behind")
    }

    func testAnAdministrativeChangeWritesOneLine() async throws {
        let accounts = harness.services.accounts
        // The seed's changes (two accounts, two organizations, one membership) were one line each.
        XCTAssertEqual([count(.userCreate), count(.orgCreate), count(.membershipAdd)], [2, 2, 1])
        try await accounts.addUser("carol", password: CoreHarness.password, by: .operator)
        try await accounts.setGlobalRole("carol", to: .admin, by: .operator)
        try await accounts.addMember(organization: "org2", username: "carol", role: .owner, by: .operator)
        XCTAssertEqual([count(.userCreate), count(.userRoleChange), count(.membershipAdd)], [3, 1, 2])
        let carol = try await harness.services.store.read { tx in try await tx.user(named: "carol") }
        XCTAssertEqual(carol?.globalRole, .admin)
    }

    /// A renewal counts once against the session's limit, however often its body ran.
    func testRenewalsCountOnceAgainstTheSessionLimit() async throws {
        let services = harness.services
        let limit = services.orgTokens.refreshThrottle.policy.sessionLimit
        var bundle = try await services.orgTokens.login(username: "alice", password: CoreHarness.password, organization: "org1")
        for _ in 0..<limit {
            bundle = try await services.orgTokens.refresh(bundle.refresh)
        }
        await XCTAssertBrokerError(.tooManyAttempts) { try await services.orgTokens.refresh(bundle.refresh) }
        XCTAssertEqual(count(.tokenRefresh), limit)
        XCTAssertEqual(count(.tokenRefresh, .denied), 1)
    }
}
