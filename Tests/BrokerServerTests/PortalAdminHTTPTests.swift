import BrokerCore
import Foundation
import HTTPTypes
import XCTest

/// `/admin` over HTTP: a global admin manages accounts, organizations and keys and reads the
/// audit log with the admin API's rules and audit lines; anyone else gets the 403 page.
final class PortalAdminHTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        harness = try await ServerHarness.withAdmin()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    func lines(_ action: String) throws -> [[String: Any]] {
        try harness.auditLines().filter { $0["action"] as? String == action }
    }

    /// The end of the issue's flow: an admin disables a user, whose browser and API sessions
    /// are then gone.
    func testAnAdminDisablesAUserWhoseSessionsAreGone() async throws {
        try await harness.withPortal { admin in
            let alice = PortalBrowser(admin.client)
            try await alice.signIn("alice", ServerHarness.password)
            let tokens = try await admin.client.orgTokens("alice", "org1")
            XCTAssertEqual(tokens.status, .ok)

            try await admin.signIn("root", ServerHarness.password)
            var page = try await admin.get("/account")
            XCTAssertTrue(page.text.contains(#"href="/admin/users""#), "admins see the Admin link")
            do {
                let answer = try await admin.get("/admin")
                XCTAssertEqual(answer.location, "/admin/users")
            }
            page = try await admin.get("/admin/users")
            XCTAssertEqual(page.status, .ok)
            for name in ["alice", "bob", "root"] { XCTAssertTrue(page.text.contains(#"href="/admin/users/\#(name)""#), name) }
            page = try await admin.get("/admin/users/alice")
            XCTAssertEqual(page.status, .ok)
            XCTAssertTrue(page.text.contains("generation 1, org1"), page.text)
            page = try await admin.post("/admin/users/alice/disable", [])
            XCTAssertEqual(page.location, "/admin/users/alice?notice=account-disabled")

            do {
                let answer = try await alice.get("/account")
                XCTAssertEqual(answer.status, .seeOther, "alice's browser is signed out")
            }
            do {
                let answer = try await admin.client.refresh(tokens.refresh)
                XCTAssertEqual(answer.status, .unauthorized, "and her client")
            }
            page = try await admin.get("/admin/users/alice")
            XCTAssertTrue(page.text.contains("disabled"))
            page = try await admin.post("/admin/users/alice/enable", [])
            XCTAssertEqual(page.location, "/admin/users/alice?notice=account-enabled")
        }
        let disable = try XCTUnwrap(try lines("user.disable").first)
        XCTAssertEqual(disable["actor"] as? String, "root")
        XCTAssertEqual(disable["target"] as? String, "alice")
    }

    func testRolesPasswordsAndSessions() async throws {
        let accounts = harness.services.accounts
        try await harness.withPortal { admin in
            try await admin.signIn("root", ServerHarness.password)
            try await admin.get("/admin/users/bob")
            var page = try await admin.post("/admin/users/bob/role", [("role", "introspector")])
            XCTAssertEqual(page.location, "/admin/users/bob?notice=role-changed")
            do {
                let answer = try await accounts.user(named: "bob", by: .operator)
                XCTAssertEqual(answer.globalRole, .introspector)
            }
            try await admin.get("/admin/users/bob")
            page = try await admin.post("/admin/users/bob/password", [("password", "short")])
            XCTAssertEqual(page.status, .badRequest)
            XCTAssertTrue(page.text.contains(#"id="action-error""#))
            page = try await admin.post("/admin/users/bob/password", [("password", "a new password for bob")])
            XCTAssertEqual(page.location, "/admin/users/bob?notice=password-reset")
            // The last admin cannot demote themselves: the API's 409, on the page.
            try await admin.get("/admin/users/root")
            page = try await admin.post("/admin/users/root/role", [("role", "none")])
            XCTAssertEqual(page.status, .conflict)
            XCTAssertTrue(page.text.contains("last active admin"))
            page = try await admin.get("/admin/users/nobody")
            XCTAssertEqual(page.status, .notFound)
        }
        XCTAssertEqual(try lines("user.role_change").first?["reason"] as? String, "global_role=introspector")
        XCTAssertEqual(try lines("user.password_reset").compactMap { $0["outcome"] as? String }, ["failure", "success"])
    }

    func testOrganizationsAreCreatedAndDeletedOnlyWithTheNameTyped() async throws {
        try await harness.withPortal { admin in
            try await admin.signIn("root", ServerHarness.password)
            try await admin.get("/admin/orgs")
            var page = try await admin.post("/admin/orgs", [("name", "org3"), ("cluster", "cluster3")])
            XCTAssertEqual(page.location, "/admin/orgs?notice=organization-created")
            page = try await admin.get("/admin/orgs")
            XCTAssertTrue(page.text.contains("cluster3"))
            page = try await admin.post("/admin/orgs", [("name", "org 4"), ("cluster", "")])
            XCTAssertEqual(page.status, .badRequest)
            try await admin.get("/admin/orgs")
            page = try await admin.post("/admin/orgs/org3/delete", [("confirm", "org")])
            XCTAssertEqual(page.status, .badRequest)
            XCTAssertTrue(page.text.contains("type the organization"))
            try await admin.get("/admin/orgs")
            page = try await admin.post("/admin/orgs/org3/delete", [("confirm", "org3")])
            XCTAssertEqual(page.location, "/admin/orgs?notice=organization-deleted")
        }
        XCTAssertEqual(try lines("org.create").compactMap { $0["outcome"] as? String }, ["success", "failure"])
        XCTAssertEqual(try lines("org.delete").first?["org"] as? String, "org3")
    }

    func testKeysRotateAndWithdrawWithTheCLIsRules() async throws {
        let keys = harness.services.keys
        try await harness.withPortal { admin in
            try await admin.signIn("root", ServerHarness.password)
            var page = try await admin.get("/admin/keys")
            XCTAssertEqual(page.status, .ok)
            let before = try keys.list(by: .operator)
            XCTAssertEqual(before.count, 2)
            // The next key is younger than key_prepublication: a plain rotation is refused.
            page = try await admin.post("/admin/keys/rotate", [])
            XCTAssertEqual(page.status, .conflict)
            XCTAssertTrue(page.text.contains(#"id="action-error""#))
            try await admin.get("/admin/keys")
            page = try await admin.post("/admin/keys/rotate", [("force", "true")])
            XCTAssertEqual(page.location, "/admin/keys?notice=key-rotated")
            let retired = try XCTUnwrap(try keys.list(by: .operator).first { $0.state == .retired }).kid
            try await admin.get("/admin/keys")
            page = try await admin.post("/admin/keys/\(retired)/retire", [("confirm", "not it")])
            XCTAssertEqual(page.status, .badRequest)
            try await admin.get("/admin/keys")
            page = try await admin.post("/admin/keys/\(retired)/retire", [("confirm", retired)])
            XCTAssertEqual(page.location, "/admin/keys?notice=key-withdrawn")
            XCTAssertFalse(try keys.list(by: .operator).contains { $0.kid == retired })
        }
        XCTAssertEqual(try lines("key.rotate").last?["reason"] as? String, "forced")
        XCTAssertEqual(try lines("key.retire").last?["outcome"] as? String, "success")
    }

    func testTheAuditPageFilters() async throws {
        try await harness.withPortal { admin in
            try await admin.signIn("root", ServerHarness.password)
            try await admin.get("/admin/users/bob")
            try await admin.post("/admin/users/bob/disable", [])
            var page = try await admin.get("/admin/audit?action=user.disable")
            XCTAssertEqual(page.status, .ok)
            XCTAssertTrue(page.text.contains("<code>user.disable</code>"), page.text)
            XCTAssertFalse(page.text.contains("<code>session.login</code>"))
            page = try await admin.get("/admin/audit?actor=root&since=1h")
            XCTAssertTrue(page.text.contains("<code>session.login</code>"))
            page = try await admin.get("/admin/audit?since=yesterday")
            XCTAssertEqual(page.status, .badRequest)
            XCTAssertTrue(page.text.contains(#"id="filter-error""#))
        }
    }

    /// A member (not a global admin) gets the 403 page on every admin page and form, and no
    /// Admin link.
    func testOthersGetTheForbiddenPage() async throws {
        let accounts = harness.services.accounts
        try await harness.withPortal { browser in
            try await browser.signIn("alice", ServerHarness.password)
            let account = try await browser.get("/account")
            XCTAssertFalse(account.text.contains(#"href="/admin/users""#))
            for path in ["/admin/users", "/admin/users/bob", "/admin/orgs", "/admin/keys", "/admin/audit"] {
                let page = try await browser.get(path)
                XCTAssertEqual(page.status, .forbidden, path)
            }
            try await browser.get("/account")
            let token = try XCTUnwrap(PortalBrowser.csrfToken(in: browser.lastPage))
            let forms: [(String, [(String, String)])] = [
                ("/admin/users/bob/disable", []), ("/admin/users/bob/role", [("role", "admin")]),
                ("/admin/users/bob/password", [("password", "a password for bob!")]),
                ("/admin/users/bob/sessions/revoke-all", []), ("/admin/orgs", [("name", "org9")]),
                ("/admin/orgs/org2/delete", [("confirm", "org2")]), ("/admin/keys/rotate", [("force", "true")]),
            ]
            for (path, fields) in forms {
                let page = try await browser.post(path, fields, csrf: .some(token))
                XCTAssertEqual(page.status, .forbidden, path)
            }
        }
        let bob = try await accounts.user(named: "bob", by: .operator)
        XCTAssertTrue(bob.isActive)
        XCTAssertNil(bob.globalRole)
    }
}
