import BrokerCore
import FakeGitHub
import Foundation
import HTTPTypes
import XCTest

/// Sign-in with GitHub's device flow at the portal, against the fake GitHub: the code shown,
/// GitHub asked at most once per interval, the approval signing the browser in (the account a
/// mapping admits, created as for a PAT), a denial or a forged flow cookie sending it back.
final class PortalGitHubHTTPTests: XCTestCase {
    var github: FakeGitHub!
    var harness: ServerHarness!

    override func setUp() async throws {
        (github, harness) = try await ServerHarness.withFakeGitHub()
        github.addUser(login: "carol", id: 30, token: "ghp_carol", organizations: ["SlideRuleEarth": .admin])
    }

    override func tearDown() async throws {
        try await harness.shutdown()
        await github.stop()
    }

    static func userCode(in page: String) throws -> String {
        let range = try XCTUnwrap(page.range(of: #"id="user-code">[^<]+<"#, options: .regularExpression))
        return String(page[range].dropFirst(#"id="user-code">"#.count).dropLast())
    }

    func testTheDeviceFlowSignsTheBrowserIn() async throws {
        let (github, clock) = (github!, harness.clock)
        try await harness.withPortal { browser in
            // A session planted in the browser before the GitHub sign-in ends with it (fixation).
            try await browser.signIn("alice", ServerHarness.password)
            let planted = try XCTUnwrap(browser.cookies["__Host-broker_session"])
            browser.cookies["__Host-broker_session"] = nil
            let form = try await browser.get("/signin")
            browser.cookies["__Host-broker_session"] = planted
            XCTAssertTrue(form.text.contains(#"action="/signin/github/device""#))
            var page = try await browser.post("/signin/github/device", [])
            XCTAssertEqual(page.status, .seeOther)
            XCTAssertEqual(page.location, "/signin/github/device")
            let flow = try XCTUnwrap(page.setCookies.first { $0.hasPrefix("__Host-broker_flow=") })
            XCTAssertTrue(flow.contains("; Max-Age="), flow)
            XCTAssertTrue(flow.hasSuffix("; Secure; HttpOnly; SameSite=Lax"), flow)

            page = try await browser.get("/signin/github/device")
            XCTAssertEqual(page.status, .ok)
            XCTAssertTrue(page.text.contains(#"<meta http-equiv="refresh" content="5">"#), page.text)
            let code = try Self.userCode(in: page.text)
            XCTAssertEqual(github.requestCount(on: .accessToken), 0, "not asked before GitHub's interval")

            clock.advance(by: 5)
            page = try await browser.get("/signin/github/device")
            XCTAssertEqual(page.status, .ok, "pending")
            XCTAssertEqual(github.requestCount(on: .accessToken), 1)
            page = try await browser.get("/signin/github/device")
            XCTAssertEqual(github.requestCount(on: .accessToken), 1, "a reload within the interval asks nothing")

            github.approveDevice(userCode: code, token: "ghp_carol")
            clock.advance(by: 6)
            page = try await browser.get("/signin/github/device")
            XCTAssertEqual(page.status, .seeOther, page.text)
            XCTAssertEqual(page.location, "/account")
            XCTAssertNotNil(browser.cookies["__Host-broker_session"])
            XCTAssertNil(browser.cookies["__Host-broker_flow"])
            XCTAssertNotEqual(browser.cookies["__Host-broker_session"], planted)
            let account = try await browser.get("/account")
            XCTAssertEqual(account.status, .ok)
            XCTAssertTrue(account.text.contains("carol"))
            let replayed = try await PortalBrowser(browser.client).get("/account", headers: [.cookie: "__Host-broker_session=\(planted)"])
            XCTAssertEqual(replayed.status, .seeOther, "the planted session ended at the GitHub sign-in")
        }
        let replaced = try harness.auditLines().filter { $0["action"] as? String == "session.revoke" }
        XCTAssertEqual(replaced.compactMap { $0["reason"] as? String }, ["replaced"])
        let login = try XCTUnwrap(try harness.auditLines().last { $0["action"] as? String == "session.login" })
        XCTAssertEqual(login["outcome"] as? String, "success")
        XCTAssertEqual(login["actor"] as? String, "carol")
        XCTAssertEqual(login["reason"] as? String, "github")
        XCTAssertFalse(harness.logs.all.contains { $0.contains("ghp_carol") })
    }

    func testADenialAForgedFlowAndAnUnknownGitHubUserGoBackToSignIn() async throws {
        let (github, clock) = (github!, harness.clock)
        github.addUser(login: "mallory", id: 66, token: "ghp_mallory", organizations: [:])
        try await harness.withPortal { browser in
            try await browser.get("/signin")
            try await browser.post("/signin/github/device", [])
            var page = try await browser.get("/signin/github/device")
            github.denyDevice(userCode: try Self.userCode(in: page.text))
            clock.advance(by: 6)
            page = try await browser.get("/signin/github/device")
            XCTAssertEqual(page.location, "/signin?notice=github-denied")
            XCTAssertNil(browser.cookies["__Host-broker_flow"])

            browser.cookies["__Host-broker_flow"] = "AQ" + String(repeating: "A", count: 80)
            page = try await browser.get("/signin/github/device")
            XCTAssertEqual(page.location, "/signin?notice=github-expired")

            // Approved at GitHub by a user no organization admits: the sign-in page says why.
            try await browser.get("/signin")
            try await browser.post("/signin/github/device", [])
            page = try await browser.get("/signin/github/device")
            github.approveDevice(userCode: try Self.userCode(in: page.text), token: "ghp_mallory")
            clock.advance(by: 6)
            page = try await browser.get("/signin/github/device")
            XCTAssertEqual(page.status, .forbidden, page.text)
            XCTAssertTrue(page.text.contains(#"role="alert""#))
            XCTAssertNil(browser.cookies["__Host-broker_session"])

            // Without the sign-in form's token, no flow starts.
            let refused = try await PortalBrowser(browser.client).post("/signin/github/device", [], csrf: .some("x"))
            XCTAssertEqual(refused.status, .forbidden)
        }
    }

    /// Runs a device flow in `browser` started by POSTing `path` (with the last page's token)
    /// and approved at GitHub with `token`; returns the answer that ends it.
    static func deviceFlow(
        _ browser: PortalBrowser, start path: String, approveWith token: String, github: FakeGitHub, clock: ManualWallClock
    ) async throws -> PortalBrowser.Page {
        let started = try await browser.post(path, [])
        XCTAssertEqual(started.location, "/signin/github/device", started.text)
        let page = try await browser.get("/signin/github/device")
        github.approveDevice(userCode: try userCode(in: page.text), token: token)
        clock.advance(by: 6)
        return try await browser.get("/signin/github/device")
    }

    func testSignUpWithGitHubMakesAPasswordlessLinkedAccount() async throws {
        try await harness.shutdown()
        await github.stop()
        (github, harness) = try await ServerHarness.withFakeGitHub { $0.portalSignup = .open }
        github.addUser(login: "newbie", id: 77, token: "ghp_newbie", organizations: [:])
        let (github, clock) = (github!, harness.clock)
        try await harness.withPortal { browser in
            let form = try await browser.get("/signup")
            XCTAssertTrue(form.text.contains(#"action="/signup/github""#))
            let done = try await Self.deviceFlow(browser, start: "/signup/github", approveWith: "ghp_newbie", github: github, clock: clock)
            XCTAssertEqual(done.location, "/account?notice=welcome", done.text)
            let account = try await browser.get("/account")
            XCTAssertTrue(account.text.contains("Linked to the GitHub user <strong>newbie</strong>"), account.text)
            XCTAssertTrue(account.text.contains("signs in with GitHub and has no password"))
            // Signing up again with the same GitHub user signs in to the account it has.
            let again = PortalBrowser(browser.client)
            try await again.get("/signup")
            let second = try await Self.deviceFlow(again, start: "/signup/github", approveWith: "ghp_newbie", github: github, clock: clock)
            XCTAssertEqual(second.location, "/account?notice=welcome", second.text)
        }
        XCTAssertEqual(try harness.auditLines().filter { $0["action"] as? String == "user.create" }.count, 1, "one account, made once")
        let user = try await harness.services.accounts.user(named: "newbie", by: .operator)
        XCTAssertEqual(user.githubID, 77)
        XCTAssertNil(user.passwordHash)
        let create = try XCTUnwrap(try harness.auditLines().first { $0["action"] as? String == "user.create" })
        XCTAssertEqual(create["actor"] as? String, "signup")
        XCTAssertEqual(create["reason"] as? String, "signup github")
    }

    func testLinkingAndUnlinkingGitHubFromTheAccountPage() async throws {
        let (github, clock) = (github!, harness.clock)
        github.addUser(login: "alice-gh", id: 41, token: "ghp_alice", organizations: [:])
        let accounts = harness.services.accounts
        try await harness.withPortal { browser in
            try await browser.signIn("alice", ServerHarness.password)
            var page = try await browser.get("/account")
            XCTAssertTrue(page.text.contains(#"action="/account/github/link""#))
            // carol's GitHub user belongs to carol's account (made by her GitHub sign-in).
            let carol = PortalBrowser(browser.client)
            try await carol.get("/signin")
            _ = try await Self.deviceFlow(carol, start: "/signin/github/device", approveWith: "ghp_carol", github: github, clock: clock)
            page = try await Self.deviceFlow(browser, start: "/account/github/link", approveWith: "ghp_carol", github: github, clock: clock)
            XCTAssertEqual(page.status, .conflict, page.text)
            XCTAssertTrue(page.text.contains(#"id="github-error""#))

            try await browser.get("/account")
            page = try await Self.deviceFlow(browser, start: "/account/github/link", approveWith: "ghp_alice", github: github, clock: clock)
            XCTAssertEqual(page.location, "/account?notice=github-linked", page.text)
            let linked = try await accounts.user(named: "alice", by: .operator)
            XCTAssertEqual(linked.githubID, 41)

            // Signed in more than 10 minutes ago: unlinking needs a fresh sign-in.
            clock.advance(by: 601)
            try await browser.get("/account")
            page = try await browser.post("/account/github/unlink", [])
            XCTAssertEqual(page.status, .unauthorized)
            browser.cookies = [:]
            try await browser.get("/signin")
            page = try await Self.deviceFlow(browser, start: "/signin/github/device", approveWith: "ghp_alice", github: github, clock: clock)
            XCTAssertEqual(page.location, "/account", "GitHub signs alice in now")
            try await browser.get("/account")
            page = try await browser.post("/account/github/unlink", [])
            XCTAssertEqual(page.location, "/signin?notice=github-unlinked")
            XCTAssertNil(browser.cookies["__Host-broker_session"])
        }
        let alice = try await accounts.user(named: "alice", by: .operator)
        XCTAssertNil(alice.githubID)
        let links = try harness.auditLines().filter { $0["action"] as? String == "user.link_github" }
        XCTAssertEqual(links.compactMap { $0["outcome"] as? String }, ["failure", "success", "success"])
        XCTAssertEqual(links.last?["reason"] as? String, "unlinked self")
    }

    /// GitHub's OAuth web flow (with `github_client_secret`): the link to GitHub's page with a
    /// state and a PKCE challenge; the callback with the right state and code signs the browser
    /// in; another state, or a code used once already, does not.
    func testTheWebFlowSignsTheBrowserIn() async throws {
        try await harness.shutdown()
        await github.stop()
        (github, harness) = try await ServerHarness.withFakeGitHub { configuration in
            configuration.githubClientSecret = "fake-client-secret"
            configuration.issuer = "http://127.0.0.1:8080"
        }
        let webURL = harness.services.configuration.githubWebURL
        github.addUser(login: "carol", id: 30, token: "ghp_carol", organizations: ["SlideRuleEarth": .admin])
        let github = github!
        try await harness.withPortal { browser in
            let form = try await browser.get("/signin?next=%2Faccount")
            XCTAssertTrue(form.text.contains(#"href="/signin/github/web?next=%2Faccount""#), form.text)
            let start = try await browser.get("/signin/github/web?next=%2Faccount")
            XCTAssertEqual(start.status, .seeOther)
            let location = try XCTUnwrap(start.location)
            XCTAssertTrue(location.hasPrefix(webURL + "/login/oauth/authorize?client_id=fake-client-id&redirect_uri="), location)
            let query = Dictionary(
                uniqueKeysWithValues: (URLComponents(string: location)?.queryItems ?? []).map { ($0.name, $0.value ?? "") })
            XCTAssertEqual(query["redirect_uri"], "http://127.0.0.1:8080/signin/github/callback")
            XCTAssertEqual(query["code_challenge_method"], "S256")
            let state = try XCTUnwrap(query["state"])
            let code = try XCTUnwrap(
                github.authorize(login: "carol", redirectURI: query["redirect_uri"]!, codeChallenge: query["code_challenge"]!))

            // Another state (a callback forged for this browser) is refused, and changes nothing.
            var page = try await browser.get("/signin/github/callback?code=\(code)&state=other")
            XCTAssertEqual(page.status, .forbidden)
            page = try await browser.get("/signin/github/callback?code=\(code)&state=\(state)")
            XCTAssertEqual(page.status, .seeOther, page.text)
            XCTAssertEqual(page.location, "/account")
            XCTAssertNotNil(browser.cookies["__Host-broker_session"])
            XCTAssertNil(browser.cookies["__Host-broker_flow"])

            // The same code again, in a new flow: GitHub refuses it.
            browser.cookies = [:]
            let again = try await browser.get("/signin/github/web")
            let secondState = try XCTUnwrap(
                URLComponents(string: again.location ?? "")?.queryItems?.first { $0.name == "state" }?.value)
            page = try await browser.get("/signin/github/callback?code=\(code)&state=\(secondState)")
            XCTAssertEqual(page.status, .unauthorized, page.text)
            XCTAssertNil(browser.cookies["__Host-broker_session"])
        }
        XCTAssertFalse(harness.logs.all.contains { $0.contains("fake-client-secret") })
    }
}
