import BrokerCore
import Foundation
import XCTest

/// Invitations in the core: who may make, list and revoke them, what their lines say, the code's
/// form, and a sign-up with one (the account and the use in one transaction; an organization's
/// granting its membership), refused alike when reused or expired; `portal_signup: invite`.
final class InvitationTests: XCTestCase {
    private var harness: CoreHarness!
    private let sink = InMemoryAuditSink()
    private let origin = AuditContext(requestID: "r-invite-1", clientIP: "192.0.2.9")

    /// alice (member of org1), bob (nothing), olivia (owner of org1), root (global admin); org1, org2.
    override func setUp() async throws {
        harness = try await CoreHarness.make(auditSink: sink) { configuration in
            configuration.portalSignup = .invite
            configuration.portalSignupThrottleIP = 1000
        }
        try await harness.seed()
        let accounts = harness.services.accounts
        try await accounts.addUser("olivia", password: CoreHarness.password, by: .operator)
        try await accounts.addMember(organization: "org1", username: "olivia", role: .owner, by: .operator)
        try await accounts.addUser("root", password: CoreHarness.password, globalRole: .admin, by: .operator)
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    private var accounts: AccountAdministration { harness.services.accounts }

    private func actor(_ name: String) async throws -> AdministrativeActor {
        let user = try await harness.services.store.read { tx in try await tx.user(named: name) }
        return AdministrativeActor(user: try XCTUnwrap(user), context: origin)
    }

    private func lines(_ action: AuditAction) -> [AuditEvent] {
        sink.events.filter { $0.action == action }
    }

    private func assertCatalogued(_ event: AuditEvent, file: StaticString = #filePath, line: UInt = #line) {
        let entry = AuditAction.catalogue.first { $0.action == event.action }
        XCTAssertEqual(entry?.admits(event), true, "\(event)", file: file, line: line)
    }

    // MARK: The code

    func testTheCodeIs128BitsOfCrockfordBase32GroupedAndMatchesAsTyped() {
        let code = InvitationCode.generate()
        let groups = code.split(separator: "-")
        XCTAssertEqual(groups.map(\.count), [4, 4, 4, 4, 4, 4, 2], code)
        let alphabet = Set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
        XCTAssertTrue(groups.joined().allSatisfy(alphabet.contains), code)
        XCTAssertNotEqual(InvitationCode.generate(), code)

        let hash = InvitationCode.hash(of: code)
        XCTAssertEqual(hash.count, 64)
        XCTAssertEqual(InvitationCode.hash(of: code.lowercased()), hash)
        XCTAssertEqual(InvitationCode.hash(of: code.replacingOccurrences(of: "-", with: "")), hash)
        XCTAssertEqual(InvitationCode.hash(of: " " + code.replacingOccurrences(of: "-", with: " ") + " "), hash)
        XCTAssertEqual(InvitationCode.normalized("o1l-i 0k"), "0111" + "0K", "Crockford's look-alikes read as digits")
        XCTAssertNotEqual(InvitationCode.hash(of: "ABCD-EFGH"), InvitationCode.hash(of: "ABCD-EFGJ"))
    }

    // MARK: Who may invite

    func testAnOwnerInvitesIntoTheirOrganizationWithARoleTheyHold() async throws {
        let olivia = try await actor("olivia")
        let (invitation, code) = try await accounts.createInvitation(
            organization: "org1", role: .owner, lifetime: Invitation.defaultLifetime, by: olivia)
        let now = harness.clock.now()
        XCTAssertEqual(invitation.role, .owner)
        XCTAssertEqual(invitation.createdAt, now)
        XCTAssertEqual(invitation.expiresAt, now.addingTimeInterval(7 * 86_400))
        XCTAssertNotNil(invitation.organizationID)
        XCTAssertEqual(invitation.createdBy, olivia.userID)
        XCTAssertEqual(invitation.codeHash, InvitationCode.hash(of: code))
        XCTAssertNil(invitation.usedAt)
        let stored = try await harness.services.store.read { tx in try await tx.invitation(codeHash: InvitationCode.hash(of: code)) }
        XCTAssertEqual(stored, invitation, "only the hash is stored")

        let line = try XCTUnwrap(lines(.inviteCreate).last)
        XCTAssertEqual(line.outcome, .success)
        XCTAssertEqual(line.actor, "olivia")
        XCTAssertEqual(line.organization, "org1")
        XCTAssertEqual(line.target, invitation.id)
        XCTAssertEqual(line.reason, "role=owner")
        XCTAssertEqual(line.requestID, "r-invite-1")
        XCTAssertFalse(String(decoding: Array(sink.lines.joined()), as: UTF8.self).contains(code), "the code is in no audit line")
        assertCatalogued(line)

        let listed = try await accounts.invitations(organization: "org1", by: olivia)
        XCTAssertEqual(listed, [invitation])
    }

    func testWhoMayNotInvite() async throws {
        let olivia = try await actor("olivia")
        let alice = try await actor("alice")
        let week = Invitation.defaultLifetime
        await XCTAssertBrokerError(.forbidden) {
            try await self.accounts.createInvitation(organization: "org1", role: .admin, lifetime: week, by: olivia)
        }
        XCTAssertEqual(lines(.inviteCreate).last?.outcome, .denied)
        XCTAssertEqual(lines(.inviteCreate).last?.organization, "org1")
        await XCTAssertBrokerError(.forbidden) {
            try await self.accounts.createInvitation(organization: "org2", role: .member, lifetime: week, by: olivia)
        }
        await XCTAssertBrokerError(.forbidden) {
            try await self.accounts.createInvitation(organization: "org1", role: .member, lifetime: week, by: alice)
        }
        await XCTAssertBrokerError(.forbidden) {
            try await self.accounts.createInvitation(organization: nil, role: .member, lifetime: week, by: olivia)
        }
        await XCTAssertBrokerError(.notFound) {
            try await self.accounts.createInvitation(organization: "org9", role: .member, lifetime: week, by: .operator)
        }
        for lifetime in [59, 30 * 86_400 + 1, -1] {
            await XCTAssertBrokerError(.invalidRequest) {
                try await self.accounts.createInvitation(organization: "org1", role: .member, lifetime: lifetime, by: olivia)
            }
        }
        await XCTAssertBrokerError(.forbidden) { try await self.accounts.invitations(organization: "org1", by: alice) }
        await XCTAssertBrokerError(.forbidden) { try await self.accounts.invitations(organization: nil, by: olivia) }
        let stored = try await harness.services.store.read { tx in
            try await tx.invitations(organizationID: nil).count + tx.invitations(organizationID: 1).count
        }
        XCTAssertEqual(stored, 0, "nothing refused was made")
        for line in lines(.inviteCreate) { assertCatalogued(line) }
    }

    func testAGlobalAdminInvitesToAnAccountAloneAsAMember() async throws {
        let root = try await actor("root")
        let (invitation, _) = try await accounts.createInvitation(organization: nil, role: .owner, lifetime: 60, by: root)
        XCTAssertNil(invitation.organizationID)
        XCTAssertEqual(invitation.role, .member, "an account alone has no role to grant")
        XCTAssertEqual(invitation.expiresAt, harness.clock.now().addingTimeInterval(60))
        let line = try XCTUnwrap(lines(.inviteCreate).last)
        XCTAssertEqual(line.actor, "root")
        XCTAssertNil(line.organization)
        XCTAssertEqual(line.reason, "role=member")
        assertCatalogued(line)
        let (fromCLI, _) = try await accounts.createInvitation(organization: "org2", role: .admin, lifetime: 30 * 86_400, by: .operator)
        XCTAssertNil(fromCLI.createdBy, "the operator has no account")
        XCTAssertEqual(lines(.inviteCreate).last?.actor, "cli")
        let alone = try await accounts.invitations(organization: nil, by: root)
        XCTAssertEqual(alone, [invitation])
    }

    func testAnOwnerRevokesTheirOrganizationsInvitationsOnly() async throws {
        let olivia = try await actor("olivia")
        let alice = try await actor("alice")
        let (ours, _) = try await accounts.createInvitation(organization: "org1", role: .member, lifetime: 3600, by: .operator)
        let (admins, _) = try await accounts.createInvitation(organization: "org1", role: .admin, lifetime: 3600, by: .operator)
        let (theirs, _) = try await accounts.createInvitation(organization: "org2", role: .member, lifetime: 3600, by: .operator)
        let (alone, _) = try await accounts.createInvitation(organization: nil, role: .member, lifetime: 3600, by: .operator)

        await XCTAssertBrokerError(.forbidden) { try await self.accounts.revokeInvitation(id: ours.id, by: alice) }
        await XCTAssertBrokerError(.forbidden) { try await self.accounts.revokeInvitation(id: theirs.id, by: olivia) }
        await XCTAssertBrokerError(.forbidden) { try await self.accounts.revokeInvitation(id: alone.id, by: olivia) }
        await XCTAssertBrokerError(.notFound) { try await self.accounts.revokeInvitation(id: "no-such-id", by: olivia) }
        try await accounts.revokeInvitation(id: ours.id, by: olivia)
        try await accounts.revokeInvitation(id: admins.id, by: olivia)
        await XCTAssertBrokerError(.notFound) { try await self.accounts.revokeInvitation(id: ours.id, by: olivia) }
        try await accounts.revokeInvitation(id: alone.id, by: .operator)

        let left = try await accounts.invitations(organization: "org1", by: olivia)
        XCTAssertEqual(left, [])
        let revoked = lines(.inviteRevoke).filter { $0.outcome == .success }
        XCTAssertEqual(revoked.map(\.target), [ours.id, admins.id, alone.id])
        XCTAssertEqual(revoked.map(\.organization), ["org1", "org1", nil])
        XCTAssertEqual(revoked.map(\.actor), ["olivia", "olivia", "cli"])
        XCTAssertEqual(
            lines(.inviteRevoke).filter { $0.outcome != .success }.map(\.outcome), [.denied, .denied, .denied, .failure, .failure])
        for line in lines(.inviteRevoke) { assertCatalogued(line) }
    }

    // MARK: Signing up with one

    private func signUp(_ name: String, invitation: String?) async throws -> PortalSessionStart {
        try await harness.services.portalSignUp.signUp(
            username: name, password: CoreHarness.password, invitation: invitation, origin: nil, context: origin)
    }

    func testASignUpWithAnOrganizationsInvitationGrantsItsMembershipAndRole() async throws {
        let olivia = try await actor("olivia")
        let (invitation, code) = try await accounts.createInvitation(organization: "org1", role: .owner, lifetime: 3600, by: olivia)
        harness.clock.advance(by: 10)
        let started = try await signUp("carol", invitation: code.lowercased().replacingOccurrences(of: "-", with: " "))
        XCTAssertEqual(started.session.user.username, "carol")
        let carol = started.session.user

        let members = try await accounts.members(organization: "org1", by: olivia)
        let membership = try XCTUnwrap(members.first { $0.username == "carol" }?.membership)
        XCTAssertEqual(membership.role, .owner)
        XCTAssertTrue(membership.isActive)
        let used = try await harness.services.store.read { tx in try await tx.invitation(id: invitation.id) }
        XCTAssertEqual(used?.usedBy, carol.id)
        XCTAssertEqual(used?.usedAt, harness.clock.now())

        let created = try XCTUnwrap(lines(.userCreate).last)
        XCTAssertEqual(created.outcome, .success)
        XCTAssertEqual(created.actor, "signup")
        XCTAssertEqual(created.target, "carol")
        XCTAssertEqual(created.reason, "signup invite=\(invitation.id)")
        let added = try XCTUnwrap(lines(.membershipAdd).last)
        XCTAssertEqual(added.outcome, .success)
        XCTAssertEqual(added.actor, "signup")
        XCTAssertEqual(added.organization, "org1")
        XCTAssertEqual(added.target, "carol")
        XCTAssertEqual(added.reason, "invite=\(invitation.id)")
        XCTAssertEqual(added.requestID, "r-invite-1")
        for line in [created, added] { assertCatalogued(line) }
        let order = sink.events.map(\.action).filter { [AuditAction.userCreate, .membershipAdd, .sessionLogin].contains($0) }.suffix(3)
        XCTAssertEqual(Array(order), [.userCreate, .membershipAdd, .sessionLogin])
        XCTAssertEqual(lines(.sessionLogin).last?.reason, "signup")
    }

    func testAnAccountOnlyInvitationMakesAnAccountWithoutAMembership() async throws {
        let (invitation, code) = try await accounts.createInvitation(organization: nil, role: .member, lifetime: 3600, by: .operator)
        let membershipsBefore = lines(.membershipAdd).count
        let started = try await signUp("dave", invitation: code)
        let memberships = try await harness.services.store.read { tx in try await tx.memberships(userID: started.session.user.id) }
        XCTAssertEqual(memberships.count, 0)
        XCTAssertEqual(lines(.userCreate).last?.reason, "signup invite=\(invitation.id)")
        XCTAssertEqual(lines(.membershipAdd).count, membershipsBefore, "no membership, no line")
    }

    func testAUsedOrExpiredOrUnknownInvitationCreatesNoAccount() async throws {
        let (_, code) = try await accounts.createInvitation(organization: "org1", role: .member, lifetime: 3600, by: .operator)
        _ = try await signUp("erin", invitation: code)
        let (_, short) = try await accounts.createInvitation(organization: "org1", role: .member, lifetime: 60, by: .operator)
        harness.clock.advance(by: 60)
        for (name, typed) in [("frank", code), ("grace", short), ("heidi", "ABCD-EFGH-JKMN-PQRS-TVWX-YZ01-23")] {
            do {
                _ = try await signUp(name, invitation: typed)
                XCTFail("\(name) signed up with a code that is not valid")
            } catch let error as BrokerError {
                XCTAssertEqual(error.code, .invalidRequest)
                XCTAssertEqual(error.detail, "this invitation is not valid", "one answer for used, expired and unknown")
            }
            let account = try await harness.services.store.read { tx in try await tx.user(named: name) }
            XCTAssertNil(account, "\(name): no account without a valid invitation")
        }
        let refusals = lines(.userCreate).filter { $0.outcome != .success }
        XCTAssertEqual(refusals.map(\.target), ["frank", "grace", "heidi"])
        XCTAssertEqual(refusals.map(\.reason), ["invalid_request", "invalid_request", "invalid_request"])
        let members = try await accounts.members(organization: "org1", by: .operator).map(\.username)
        XCTAssertEqual(members.sorted(), ["alice", "erin", "olivia"])
    }

    func testInviteModeTakesSignUpsWithAnInvitationOnly() async throws {
        XCTAssertFalse(harness.services.portalSignUp.isOpen)
        XCTAssertTrue(harness.services.portalSignUp.takesInvitations)
        for typed in [nil, "", " - "] {
            await XCTAssertBrokerError(.forbidden) { try await self.signUp("judy", invitation: typed) }
        }
        await XCTAssertBrokerError(.forbidden) {
            try await self.harness.services.portalSignUp.admitGitHubSignUp(context: self.origin)
        }
        let judy = try await harness.services.store.read { tx in try await tx.user(named: "judy") }
        XCTAssertNil(judy)
    }
}

/// `portal_signup` as configured: `open` takes an invitation too, `closed` none.
final class InvitationSignupModeTests: XCTestCase {
    func testOpenModeHonoursAnInvitationAndClosedModeRefusesEvenWithOne() async throws {
        for mode in [PortalSignupMode.open, .closed] {
            let harness = try await CoreHarness.make { $0.portalSignup = mode }
            do {
                try await harness.seed()
                let (_, code) = try await harness.services.accounts.createInvitation(
                    organization: "org2", role: .owner, lifetime: 3600, by: .operator)
                let signUp = {
                    try await harness.services.portalSignUp.signUp(
                        username: "kim", password: CoreHarness.password, invitation: code, origin: nil, context: .none)
                }
                if mode == .open {
                    let started = try await signUp()
                    let memberships = try await harness.services.store.read { tx in
                        try await tx.memberships(userID: started.session.user.id)
                    }
                    XCTAssertEqual(memberships.map(\.organization.name), ["org2"])
                    XCTAssertEqual(memberships.map(\.membership.role), [.owner])
                } else {
                    await XCTAssertBrokerError(.forbidden) { try await signUp() }
                }
            } catch {
                try await harness.shutdown()
                throw error
            }
            try await harness.shutdown()
        }
    }

    func testTheModeIsReadFromTheConfiguration() throws {
        var configuration = BrokerConfiguration()
        try configuration.set("portal_signup", to: "invite", source: "test")
        XCTAssertEqual(configuration.portalSignup, .invite)
        XCTAssertThrowsError(try configuration.set("portal_signup", to: "invitation", source: "test"))
    }
}
