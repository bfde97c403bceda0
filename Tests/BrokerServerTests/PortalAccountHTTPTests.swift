import BrokerCore
import Foundation
import HTTPTypes
import HummingbirdTesting
import XCTest

/// The account page's forms over HTTP: each calls the core's self-service rule, is audited as
/// its API twin, answers 303 back to the page, or shows the refusal next to its form.
final class PortalAccountHTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        harness = try await ServerHarness.make()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    func lines(_ action: String) throws -> [[String: Any]] {
        try harness.auditLines().filter { $0["action"] as? String == action }
    }

    func testAskingToJoinWithdrawingAndLeaving() async throws {
        try await harness.withPortal { browser in
            try await browser.signIn("alice", ServerHarness.password)
            var page = try await browser.get("/account")
            XCTAssertTrue(page.text.contains(#"<option value="org2">"#), "org2 is joinable")
            XCTAssertFalse(page.text.contains(#"<option value="org1">"#), "alice is in org1 already")
            page = try await browser.post("/account/requests", [("organization", "org2")])
            XCTAssertEqual(page.status, .seeOther)
            XCTAssertEqual(page.location, "/account?notice=request-sent")
            page = try await browser.get("/account?notice=request-sent")
            XCTAssertTrue(page.text.contains("Your request is sent."))
            XCTAssertTrue(page.text.contains("/account/requests/org2/withdraw"))
            XCTAssertFalse(page.text.contains(#"<option value="org2">"#), "no second request")

            // A second request for the same organization: the API's 409, next to the join form.
            page = try await browser.post("/account/requests", [("organization", "org2")])
            XCTAssertEqual(page.status, .conflict)
            XCTAssertTrue(page.text.contains(#"id="join-error""#), page.text)
            XCTAssertTrue(page.text.contains("already asked to join org2"))

            page = try await browser.post("/account/requests/org2/withdraw", [])
            XCTAssertEqual(page.location, "/account?notice=request-withdrawn")
            page = try await browser.post("/account/requests/org2/withdraw", [])
            XCTAssertEqual(page.status, .notFound)
            XCTAssertTrue(page.text.contains(#"id="requests-error""#), page.text)

            page = try await browser.post("/account/memberships/org1/leave", [])
            XCTAssertEqual(page.location, "/account?notice=organization-left")
            page = try await browser.get("/account")
            XCTAssertTrue(page.text.contains("You are not a member of any organization yet."))
            page = try await browser.post("/account/memberships/org1/leave", [])
            XCTAssertEqual(page.status, .notFound)
            XCTAssertTrue(page.text.contains(#"id="memberships-error""#))
        }
        let request = try XCTUnwrap(try lines("membership.request").first)
        XCTAssertEqual(request["actor"] as? String, "alice")
        XCTAssertEqual(request["org"] as? String, "org2")
        XCTAssertEqual(request["target"] as? String, "alice")
        XCTAssertEqual(try lines("membership.deny").compactMap { $0["outcome"] as? String }, ["success", "failure"])
        XCTAssertEqual(try lines("membership.deny").first?["reason"] as? String, "withdrawn")
        let left = try XCTUnwrap(try lines("membership.remove").first)
        XCTAssertEqual(left["actor"] as? String, "alice")
        XCTAssertEqual(left["target"] as? String, "alice")
        XCTAssertEqual(left["reason"] as? String, "self")
    }

    /// The same request through the API and through the portal write the same line (time,
    /// request id, client address aside).
    func testARequestIsAuditedAsItsAPITwin() async throws {
        let api = try await ServerHarness.make()
        defer { Task { try? await api.shutdown() } }
        try await api.withClient { client in
            let token = try await client.sessionToken("alice")
            let answer = try await client.api(.post, "/api/orgs/org2/membership-requests", token: token)
            XCTAssertEqual(answer.status, .created)
        }
        try await harness.withPortal { browser in
            try await browser.signIn("alice", ServerHarness.password)
            try await browser.get("/account")
            try await browser.post("/account/requests", [("organization", "org2")])
        }
        func masked(_ line: [String: Any]?) -> [String: String] {
            var fields: [String: String] = [:]
            for (key, value) in line ?? [:] where !["time", "request_id", "client_ip"].contains(key) { fields[key] = "\(value)" }
            return fields
        }
        let viaAPI = try api.auditLines().first { $0["action"] as? String == "membership.request" }
        let viaPortal = try lines("membership.request").first
        XCTAssertNotNil(viaAPI)
        XCTAssertEqual(masked(viaPortal), masked(viaAPI))
    }

    func testSigningOutOneSessionAndEverywhere() async throws {
        let accounts = harness.services.accounts
        try await harness.withPortal { browser in
            let tokens = try await browser.client.orgTokens("alice", "org1")
            XCTAssertEqual(tokens.status, .ok)
            _ = try await browser.client.sessionToken("bob")
            try await browser.signIn("alice", ServerHarness.password)
            var page = try await browser.get("/account")
            XCTAssertTrue(page.text.contains("SlideRule client (password), org1"), page.text)
            let sessions = try await accounts.sessions(of: "alice", by: .operator)
            let generation1 = try XCTUnwrap(sessions.first { $0.organization == "org1" }).family.id
            XCTAssertTrue(page.text.contains("/account/sessions/\(generation1)/signout"))

            // Another account's session id: not found, and nothing ends.
            let bobsSessions = try await accounts.sessions(of: "bob", by: .operator)
            let bobsSession = try XCTUnwrap(bobsSessions.first).family.id
            page = try await browser.post("/account/sessions/\(bobsSession)/signout", [])
            XCTAssertEqual(page.status, .notFound)
            XCTAssertTrue(page.text.contains(#"id="sessions-error""#))

            page = try await browser.post("/account/sessions/\(generation1)/signout", [])
            XCTAssertEqual(page.location, "/account?notice=session-signed-out")
            var refreshed = try await browser.client.refresh(tokens.refresh)
            XCTAssertEqual(refreshed.status, .unauthorized)

            let second = try await browser.client.orgTokens("alice", "org1")
            try await browser.get("/account")
            page = try await browser.post("/account/sessions/signout-all", [])
            XCTAssertEqual(page.location, "/signin?notice=signed-out-everywhere")
            XCTAssertNil(browser.cookies["__Host-broker_session"])
            refreshed = try await browser.client.refresh(second.refresh)
            XCTAssertEqual(refreshed.status, .unauthorized)
            page = try await browser.get("/account")
            XCTAssertEqual(page.status, .seeOther)
        }
        XCTAssertEqual(try lines("session.revoke").compactMap { $0["reason"] as? String }.sorted(), ["not_found", "self"])
        XCTAssertEqual(try lines("session.revoke").compactMap { $0["outcome"] as? String }.sorted(), ["failure", "success"])
        let all = try XCTUnwrap(try lines("session.revoke_all").first)
        XCTAssertEqual(all["actor"] as? String, "alice")
        XCTAssertEqual(all["reason"] as? String, "self")
    }

    func testChangingThePassword() async throws {
        let newPassword = "a brand new long password"
        try await harness.withPortal { browser in
            let tokens = try await browser.client.orgTokens("alice", "org1")
            try await browser.signIn("alice", ServerHarness.password)
            let before = try XCTUnwrap(browser.cookies["__Host-broker_session"])
            try await browser.get("/account")
            var page = try await browser.post(
                "/account/password", [("current", "not my password"), ("new", newPassword), ("confirm", newPassword)])
            XCTAssertEqual(page.status, .unauthorized)
            XCTAssertTrue(page.text.contains(#"id="current-password-error""#), page.text)
            XCTAssertTrue(page.text.contains(#"aria-invalid="true""#))
            XCTAssertEqual(browser.cookies["__Host-broker_session"], before, "still signed in")

            page = try await browser.post(
                "/account/password", [("current", ServerHarness.password), ("new", newPassword), ("confirm", "something else")])
            XCTAssertEqual(page.status, .badRequest)
            XCTAssertTrue(page.text.contains(#"id="confirm-password-error""#))

            page = try await browser.post("/account/password", [("current", ServerHarness.password), ("new", "short"), ("confirm", "short")])
            XCTAssertEqual(page.status, .badRequest)
            XCTAssertTrue(page.text.contains(#"id="new-password-error""#), page.text)

            page = try await browser.post(
                "/account/password", [("current", ServerHarness.password), ("new", newPassword), ("confirm", newPassword)])
            XCTAssertEqual(page.status, .seeOther)
            XCTAssertEqual(page.location, "/account?notice=password-changed")
            let after = try XCTUnwrap(browser.cookies["__Host-broker_session"])
            XCTAssertNotEqual(after, before)
            let goesOn = try await browser.get("/account")
            XCTAssertEqual(goesOn.status, .ok, "this browser goes on")
            let old = try await PortalBrowser(browser.client).get("/account", headers: [.cookie: "__Host-broker_session=\(before)"])
            XCTAssertEqual(old.status, .seeOther, "the old session ended")
            let refreshed = try await browser.client.refresh(tokens.refresh)
            XCTAssertEqual(refreshed.status, .unauthorized, "the other sessions ended")
            let login = try await browser.client.api(
                .post, "/api/session", json: #"{"username":"alice","password":"\#(newPassword)"}"#)
            XCTAssertEqual(login.status, .ok)
            XCTAssertFalse(page.text.contains(newPassword))
        }
        let reset = try lines("user.password_reset")
        XCTAssertEqual(reset.compactMap { $0["outcome"] as? String }, ["failure", "failure", "success"])
        XCTAssertEqual(reset.last?["reason"] as? String, "self")
        XCTAssertEqual(reset.last?["actor"] as? String, "alice")
        XCTAssertTrue(try lines("session.login").contains { $0["reason"] as? String == "password_change" })
        XCTAssertFalse(harness.logs.all.contains { $0.contains(newPassword) })
    }

    /// Every form of the account page refuses a missing or foreign token before anything runs.
    func testEveryAccountFormChecksItsToken() async throws {
        try await harness.withPortal { browser in
            try await browser.signIn("alice", ServerHarness.password)
            let forms: [(String, [(String, String)])] = [
                ("/account/requests", [("organization", "org2")]),
                ("/account/requests/org2/withdraw", []),
                ("/account/memberships/org1/leave", []),
                ("/account/sessions/signout-all", []),
                ("/account/sessions/x/signout", []),
                ("/account/password", [("current", ServerHarness.password), ("new", "another long password"), ("confirm", "another long password")]),
            ]
            for (path, fields) in forms {
                let page = try await browser.post(path, fields, csrf: .some("forged"))
                XCTAssertEqual(page.status, .forbidden, path)
                let missing = try await browser.post(path, fields, csrf: .some(nil))
                XCTAssertEqual(missing.status, .forbidden, path)
            }
            let page = try await browser.get("/account")
            XCTAssertEqual(page.status, .ok, "still signed in, nothing changed")
            XCTAssertTrue(page.text.contains("org1"))
        }
        XCTAssertEqual(try harness.auditLines().filter { $0["action"] as? String != "session.login" }.count, 0)
    }
}
