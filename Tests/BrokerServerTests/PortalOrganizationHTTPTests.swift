import BrokerCore
import Foundation
import HTTPTypes
import XCTest

/// `/orgs/<org>` over HTTP: its owners decide requests, manage members within their authority,
/// set the token policy and read how to connect; anyone else gets the 403 page, on the page and
/// on every form.
final class PortalOrganizationHTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        harness = try await ServerHarness.make { $0.issuer = "https://login.example.org" }
        let fixtures = AccountAdministration(store: harness.services.store, pool: harness.services.passwords, clock: harness.clock)
        try await fixtures.addUser("olivia", password: ServerHarness.password, by: .operator)
        try await fixtures.addMember(organization: "org1", username: "olivia", role: .owner, by: .operator)
        _ = try await harness.services.accounts.requestMembership(
            organization: "org1", by: AdministrativeActor(user: try await fixtures.users().first { $0.username == "bob" }!))
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    func lines(_ action: String) throws -> [[String: Any]] {
        try harness.auditLines().filter { $0["action"] as? String == action }
    }

    func testAnOwnerApprovesWithARoleAndManagesMembers() async throws {
        let accounts = harness.services.accounts
        try await harness.withPortal { browser in
            try await browser.signIn("olivia", ServerHarness.password)
            var page = try await browser.get("/account")
            XCTAssertTrue(page.text.contains(#"<a href="/orgs/org1">org1</a>"#), "an owner's organization links to its page")
            page = try await browser.get("/orgs/org1")
            XCTAssertEqual(page.status, .ok)
            XCTAssertTrue(page.text.contains("/orgs/org1/requests/bob/approve"))
            XCTAssertTrue(page.text.contains(#"<option value="owner">"#))
            XCTAssertFalse(page.text.contains(#"<option value="admin""#), "an owner cannot grant admin")
            page = try await browser.post("/orgs/org1/requests/bob/approve", [("role", "owner")])
            XCTAssertEqual(page.status, .seeOther)
            XCTAssertEqual(page.location, "/orgs/org1?notice=approved")
            let members = try await accounts.members(organization: "org1", by: .operator)
            XCTAssertEqual(members.first { $0.username == "bob" }?.membership.role, .owner)

            try await browser.get("/orgs/org1")
            page = try await browser.post("/orgs/org1/members/bob/role", [("role", "member")])
            XCTAssertEqual(page.location, "/orgs/org1?notice=role-changed")
            page = try await browser.post("/orgs/org1/members/bob/role", [("role", "admin")])
            XCTAssertEqual(page.status, .forbidden, "above the owner's own role")
            try await browser.get("/orgs/org1")
            page = try await browser.post("/orgs/org1/members/alice/remove", [])
            XCTAssertEqual(page.location, "/orgs/org1?notice=member-removed")
            let after = try await accounts.members(organization: "org1", by: .operator)
            XCTAssertEqual(after.map(\.username).sorted(), ["bob", "olivia"])
        }
        let approve = try XCTUnwrap(try lines("membership.approve").first)
        XCTAssertEqual(approve["actor"] as? String, "olivia")
        XCTAssertEqual(approve["org"] as? String, "org1")
        XCTAssertEqual(approve["target"] as? String, "bob")
        XCTAssertEqual(approve["reason"] as? String, "role=owner")
        XCTAssertEqual(try lines("membership.role_change").compactMap { $0["outcome"] as? String }, ["success", "denied"])
        XCTAssertEqual(try lines("membership.remove").first?["target"] as? String, "alice")
    }

    func testADeclinedRequestIsGone() async throws {
        let accounts = harness.services.accounts
        try await harness.withPortal { browser in
            try await browser.signIn("olivia", ServerHarness.password)
            try await browser.get("/orgs/org1")
            let page = try await browser.post("/orgs/org1/requests/bob/deny", [])
            XCTAssertEqual(page.location, "/orgs/org1?notice=declined")
            let requests = try await accounts.membershipRequests(organization: "org1", by: .operator)
            XCTAssertTrue(requests.isEmpty)
            let again = try await browser.post("/orgs/org1/requests/bob/deny", [])
            XCTAssertEqual(again.status, .notFound)
        }
    }

    /// A member, and an owner of another organization, get the 403 page on the page and on
    /// every form, and nothing changes.
    func testOthersGetTheForbiddenPage() async throws {
        let accounts = harness.services.accounts
        try await harness.withPortal { browser in
            for (user, organization) in [("alice", "org1"), ("olivia", "org2")] {
                browser.cookies = [:]
                try await browser.signIn(user, ServerHarness.password)
                try await browser.get("/account")
                let page = try await browser.get("/orgs/\(organization)")
                XCTAssertEqual(page.status, .forbidden, "\(user) on \(organization)")
                XCTAssertTrue(page.text.contains("Not allowed"), page.text)
                XCTAssertEqual(page.headers[.contentType], "text/html; charset=utf-8")
                XCTAssertEqual(page.headers[.wwwAuthenticate]?.hasPrefix(#"Cookie realm="broker""#), true)
                let forms: [(String, [(String, String)])] = [
                    ("/orgs/\(organization)/requests/bob/approve", [("role", "member")]),
                    ("/orgs/\(organization)/requests/bob/deny", []),
                    ("/orgs/\(organization)/members/alice/role", [("role", "owner")]),
                    ("/orgs/\(organization)/members/alice/remove", []),
                    ("/orgs/\(organization)/policy", [("access_lifetime", "600"), ("audiences", "")]),
                ]
                for (path, fields) in forms {
                    let refused = try await browser.post(path, fields)
                    XCTAssertEqual(refused.status, .forbidden, "\(user): \(path)")
                }
            }
            let missing = try await browser.get("/orgs/no-such-org")
            XCTAssertEqual(missing.status, .notFound)
        }
        let requests = try await accounts.membershipRequests(organization: "org1", by: .operator)
        XCTAssertEqual(requests.map(\.username), ["bob"])
        let members = try await accounts.members(organization: "org1", by: .operator)
        XCTAssertEqual(members.map(\.username).sorted(), ["alice", "olivia"])
        XCTAssertEqual(members.first { $0.username == "alice" }?.membership.role, .member)
    }

    func testTheTokenPolicyAndItsRefusals() async throws {
        try await harness.withPortal { browser in
            try await browser.signIn("olivia", ServerHarness.password)
            try await browser.get("/orgs/org1")
            var page = try await browser.post("/orgs/org1/policy", [("access_lifetime", "600"), ("audiences", "org1, org1-jupyter")])
            XCTAssertEqual(page.location, "/orgs/org1?notice=policy-saved")
            page = try await browser.get("/orgs/org1?notice=policy-saved")
            XCTAssertTrue(page.text.contains(#"value="600""#))
            XCTAssertTrue(page.text.contains(#"value="org1, org1-jupyter""#))
            for (lifetime, audiences, status) in [("10", "", HTTPResponse.Status.badRequest), ("ten", "", .badRequest), ("", "org2", .conflict)] {
                page = try await browser.post("/orgs/org1/policy", [("access_lifetime", lifetime), ("audiences", audiences)])
                XCTAssertEqual(page.status, status, "\(lifetime) \(audiences)")
                XCTAssertTrue(page.text.contains(#"id="policy-error""#), page.text)
            }
            // The tokens follow the policy.
            let tokens = try await browser.client.orgTokens("alice", "org1")
            XCTAssertEqual(tokens.status, .ok)
        }
        XCTAssertEqual(try lines("org.policy_change").first?["reason"] as? String, "access_lifetime=600 audiences=org1,org1-jupyter")
    }

    func testHowToConnectNamesTheDomainTheClientsUse() async throws {
        try await harness.withPortal { browser in
            try await browser.signIn("olivia", ServerHarness.password)
            let page = try await browser.get("/orgs/org1")
            XCTAssertTrue(page.text.contains("machine ps.example.org login olivia password &lt;your password&gt;"), page.text)
            XCTAssertTrue(page.text.contains("sliderule.init(&quot;example.org&quot;, organization=&quot;org1&quot;)"))
            XCTAssertTrue(page.text.contains("https://ps.example.org/api/org_token/"))
            XCTAssertTrue(page.text.contains("SLIDERULE_GITHUB_TOKEN"))
        }
        XCTAssertEqual(ConnectSnippet(issuer: "https://ps.example.org", organization: "o", cluster: "c", username: "u").domain, "example.org")
        XCTAssertEqual(ConnectSnippet(issuer: "http://127.0.0.1:8080", organization: "o", cluster: "c", username: "u").domain, "127.0.0.1")
    }
}
