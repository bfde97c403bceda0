import BrokerCore
import Foundation
import HTTPTypes
import XCTest

/// Invitations through the pages: an owner invites from `/orgs/<org>` (the code shown once), the
/// invitee signs up with it at `/signup` (`portal_signup: invite`) and is a member with its
/// role; a used, revoked or made-up code is refused next to its field; an admin invites to an
/// account alone at `/admin/invites`.
final class PortalInvitationHTTPTests: XCTestCase {
    var harness: ServerHarness!
    static let password = "a long enough password"

    override func setUp() async throws {
        harness = try await ServerHarness.withAdmin { $0.portalSignup = .invite }
        let fixtures = AccountAdministration(store: harness.services.store, pool: harness.services.passwords, clock: harness.clock)
        try await fixtures.addUser("olivia", password: ServerHarness.password, by: .operator)
        try await fixtures.addMember(organization: "org1", username: "olivia", role: .owner, by: .operator)
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    static func code(in page: String) throws -> String {
        let range = try XCTUnwrap(page.range(of: #"id="invitation-code">[^<]+<"#, options: .regularExpression))
        return String(page[range].dropFirst(#"id="invitation-code">"#.count).dropLast())
    }

    func testAnOwnersInvitationMakesAMemberWithItsRole() async throws {
        let accounts = harness.services.accounts
        try await harness.withPortal { owner in
            try await owner.signIn("olivia", ServerHarness.password)
            try await owner.get("/orgs/org1")
            var page = try await owner.post("/orgs/org1/invites", [("role", "owner")])
            XCTAssertEqual(page.status, .ok)
            XCTAssertEqual(page.headers[.cacheControl], "no-store")
            let code = try Self.code(in: page.text)
            XCTAssertTrue(page.text.contains("/signup?invite="))
            page = try await owner.get("/orgs/org1")
            XCTAssertFalse(page.text.contains(code), "shown once")
            XCTAssertTrue(page.text.contains(">open<"))
            page = try await owner.post("/orgs/org1/invites", [("role", "admin")])
            XCTAssertEqual(page.status, .forbidden, "an owner cannot invite an admin")

            let invitee = PortalBrowser(owner.client)
            page = try await invitee.get("/signup?invite=\(code)")
            XCTAssertTrue(page.text.contains(#"value="\#(code)""#), "the link fills the field")
            XCTAssertTrue(page.text.contains(#"id="invitation""#))
            page = try await invitee.post(
                "/signup", [("username", "dora"), ("password", Self.password), ("confirm", Self.password), ("invitation", "")])
            XCTAssertEqual(page.status, .forbidden, "invite mode needs a code")
            page = try await invitee.post(
                "/signup", [("username", "dora"), ("password", Self.password), ("confirm", Self.password), ("invitation", "ABCD-EFGH")])
            XCTAssertEqual(page.status, .badRequest)
            XCTAssertTrue(page.text.contains(#"id="invitation-error""#), page.text)
            page = try await invitee.post(
                "/signup", [("username", "dora"), ("password", Self.password), ("confirm", Self.password), ("invitation", code.lowercased())])
            XCTAssertEqual(page.location, "/account?notice=welcome", page.text)
            let members = try await accounts.members(organization: "org1", by: .operator)
            XCTAssertEqual(members.first { $0.username == "dora" }?.membership.role, .owner)

            // Used: the same code again is refused.
            let second = PortalBrowser(owner.client)
            try await second.get("/signup")
            page = try await second.post(
                "/signup", [("username", "erin"), ("password", Self.password), ("confirm", Self.password), ("invitation", code)])
            XCTAssertEqual(page.status, .badRequest)
            page = try await owner.get("/orgs/org1")
            XCTAssertTrue(page.text.contains(">used<"))
        }
        let created = try harness.auditLines().filter { $0["action"] as? String == "invite.create" }
        XCTAssertEqual(created.compactMap { $0["outcome"] as? String }, ["success", "denied"])
        XCTAssertTrue(try harness.auditLines().contains {
            $0["action"] as? String == "user.create" && ($0["reason"] as? String)?.hasPrefix("signup invite=") == true
        })
    }

    func testRevokedInvitationsAndAdminInvitations() async throws {
        try await harness.withPortal { admin in
            try await admin.signIn("root", ServerHarness.password)
            try await admin.get("/admin/invites")
            var page = try await admin.post("/admin/invites", [])
            XCTAssertEqual(page.status, .ok)
            let code = try Self.code(in: page.text)
            page = try await admin.get("/admin/invites")
            let id = try XCTUnwrap(page.text.range(of: #"/admin/invites/[a-z0-9]+/revoke"#, options: .regularExpression))
            page = try await admin.post(String(page.text[id]), [])
            XCTAssertEqual(page.location, "/admin/invites?notice=invitation-revoked")
            let invitee = PortalBrowser(admin.client)
            try await invitee.get("/signup")
            page = try await invitee.post(
                "/signup", [("username", "fay"), ("password", Self.password), ("confirm", Self.password), ("invitation", code)])
            XCTAssertEqual(page.status, .badRequest, "revoked")

            // A member may not reach the admin's invitations.
            let member = PortalBrowser(admin.client)
            try await member.signIn("alice", ServerHarness.password)
            let list = try await member.get("/admin/invites")
            XCTAssertEqual(list.status, .forbidden)
            try await member.get("/account")
            let make = try await member.post("/admin/invites", [])
            XCTAssertEqual(make.status, .forbidden)
        }
    }
}
