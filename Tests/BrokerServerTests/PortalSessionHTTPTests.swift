import BrokerCore
import Foundation
import HTTPTypes
import XCTest

/// The portal's sign-in, session cookie and sign-out over HTTP: the cookie's exact flags, a new
/// id at every sign-in, the session ended on the server, idle and absolute timeouts on the
/// harness's manual clock, and every way the API ends sessions ending the browser's too.
final class PortalSessionHTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        harness = try await ServerHarness.make()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    static let sessionCookie = #"^__Host-broker_session=[A-Za-z0-9_-]{43}; Path=/; Secure; HttpOnly; SameSite=Lax$"#

    func testSignInSetsAHostOnlySecureSessionCookieAndGoesToTheAccount() async throws {
        try await harness.withPortal { browser in
            let form = try await browser.get("/signin")
            XCTAssertEqual(form.status, .ok)
            XCTAssertEqual(form.setCookies.count, 1)
            XCTAssertNotNil(form.setCookies[0].range(of: #"^__Host-broker_pre=[A-Za-z0-9_-]{22}; Path=/; Secure; HttpOnly; SameSite=Lax$"#, options: .regularExpression), form.setCookies[0])
            XCTAssertTrue(form.text.contains(#"<label for="username">"#))
            XCTAssertFalse(form.text.contains("/signin/github/device"), "no GitHub button without github_client_id")
            let signedIn = try await browser.post("/signin", [("username", "alice"), ("password", ServerHarness.password)])
            XCTAssertEqual(signedIn.status, .seeOther)
            XCTAssertEqual(signedIn.location, "/account")
            let session = try XCTUnwrap(signedIn.setCookies.first { $0.hasPrefix("__Host-broker_session=") })
            XCTAssertNotNil(session.range(of: Self.sessionCookie, options: .regularExpression), session)
            XCTAssertTrue(signedIn.setCookies.contains("__Host-broker_pre=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax"))
            let account = try await browser.get("/account")
            XCTAssertEqual(account.status, .ok)
            XCTAssertTrue(account.text.contains("alice"))
            XCTAssertTrue(account.text.contains("org1"), "alice's membership")
            XCTAssertTrue(account.text.contains("this browser"))
            // Already signed in: the sign-in page sends the browser on.
            do {
                let answer = try await browser.get("/signin")
                XCTAssertEqual(answer.location, "/account")
            }
            do {
                let answer = try await browser.get("/")
                XCTAssertEqual(answer.location, "/account")
            }
        }
        let login = try XCTUnwrap(try harness.auditLines().last { $0["action"] as? String == "session.login" })
        XCTAssertEqual(login["outcome"] as? String, "success")
        XCTAssertEqual(login["actor"] as? String, "alice")
        XCTAssertNotNil(login["session"] as? String)
        XCTAssertEqual((login["target"] as? String)?.hasPrefix("sha256:"), true)
        XCTAssertFalse(harness.logs.all.contains { $0.contains(ServerHarness.password) })
    }

    func testEverySignInStartsANewSessionAndEndsTheOneTheBrowserHad() async throws {
        try await harness.withPortal { browser in
            try await browser.signIn("alice", ServerHarness.password)
            let first = try XCTUnwrap(browser.cookies["__Host-broker_session"])
            // The form, then a session cookie planted before the sign-in (fixation).
            browser.cookies["__Host-broker_session"] = nil
            try await browser.get("/signin")
            browser.cookies["__Host-broker_session"] = first
            let signedIn = try await browser.post("/signin", [("username", "alice"), ("password", ServerHarness.password)])
            XCTAssertEqual(signedIn.status, .seeOther)
            let second = try XCTUnwrap(browser.cookies["__Host-broker_session"])
            XCTAssertNotEqual(first, second)
            // The planted session ended at the sign-in: its cookie is worth nothing now.
            do {
                let planted = try await PortalBrowser(browser.client).get("/account", headers: [.cookie: "__Host-broker_session=\(first)"])
                XCTAssertEqual(planted.status, .seeOther)
            }
            do {
                let answer = try await browser.get("/account")
                XCTAssertEqual(answer.status, .ok)
            }
        }
        let replaced = try harness.auditLines().filter { $0["action"] as? String == "session.revoke" }
        XCTAssertEqual(replaced.map { $0["reason"] as? String }, ["replaced"])
    }

    func testAWrongPasswordShowsTheErrorOnTheFormAndIsAuditedAsTheAPIsLogin() async throws {
        try await harness.withPortal { browser in
            try await browser.get("/signin")
            let refused = try await browser.post("/signin", [("username", "alice"), ("password", "not the password")])
            XCTAssertEqual(refused.status, .unauthorized)
            // RFC 9110 section 15.5.2: a 401 says how to authenticate; here, with the form's cookie.
            XCTAssertEqual(
                refused.headers[.wwwAuthenticate],
                #"Cookie realm="broker", form-action="/signin", cookie-name="__Host-broker_session""#)
            XCTAssertTrue(refused.text.contains(#"class="banner error" role="alert""#), refused.text)
            XCTAssertTrue(refused.text.contains(#"value="alice""#), "the username is kept")
            XCTAssertFalse(refused.text.contains("not the password"))
            XCTAssertNil(browser.cookies["__Host-broker_session"])
            do {
                let answer = try await browser.get("/account")
                XCTAssertEqual(answer.status, .seeOther)
            }
        }
        let line = try XCTUnwrap(try harness.auditLines().last { $0["action"] as? String == "session.login" })
        XCTAssertEqual(line["outcome"] as? String, "failure")
        XCTAssertEqual(line["reason"] as? String, "invalid_credentials", "as POST /api/session's refusal")
    }

    func testSignOutEndsTheSessionOnTheServerSoACopiedCookieIsWorthless() async throws {
        try await harness.withPortal { browser in
            try await browser.signIn("alice", ServerHarness.password)
            let copied = try XCTUnwrap(browser.cookies["__Host-broker_session"])
            try await browser.get("/account")
            let out = try await browser.post("/signout", [])
            XCTAssertEqual(out.status, .seeOther)
            XCTAssertEqual(out.location, "/signin?notice=signed-out")
            XCTAssertTrue(out.setCookies.contains("__Host-broker_session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax"))
            XCTAssertNil(browser.cookies["__Host-broker_session"])
            let replayed = try await browser.get("/account", headers: [.cookie: "__Host-broker_session=\(copied)"])
            XCTAssertEqual(replayed.status, .seeOther)
            XCTAssertEqual(replayed.location, "/signin?next=%2Faccount&notice=session-ended")
            do {
                let answer = try await browser.get("/signin?notice=signed-out")
                XCTAssertTrue(answer.text.contains("You are signed out."))
            }
        }
        let line = try XCTUnwrap(try harness.auditLines().last { $0["action"] as? String == "session.revoke" })
        XCTAssertEqual(line["outcome"] as? String, "success")
        XCTAssertEqual(line["reason"] as? String, "logout")
        XCTAssertEqual(line["actor"] as? String, "alice")
    }

    func testASessionEndsAfterTheIdleTimeoutAndAtItsLifetime() async throws {
        let clock = harness.clock
        try await harness.withPortal { browser in
            try await browser.signIn("alice", ServerHarness.password)
            // Active every 20 minutes: the idle timeout (30 min) never strikes, the lifetime (8 h) does.
            for _ in 0..<23 {
                clock.advance(by: 1200)
                do {
                    let answer = try await browser.get("/account")
                    XCTAssertEqual(answer.status, .ok)
                }
            }
            clock.advance(by: 1200)  // 8 h
            do {
                let answer = try await browser.get("/account")
                XCTAssertEqual(answer.status, .seeOther)
            }

            try await browser.signIn("alice", ServerHarness.password)
            clock.advance(by: 1799)
            do {
                let answer = try await browser.get("/account")
                XCTAssertEqual(answer.status, .ok)
            }
            clock.advance(by: 1800)
            let idle = try await browser.get("/account")
            XCTAssertEqual(idle.status, .seeOther)
            // Ended on the server, not merely refused: coming back within the timeout does not revive it.
            XCTAssertNil(browser.cookies["__Host-broker_session"])
        }
    }

    func testDisablingTheAccountOrEndingItsSessionsSignsTheBrowserOut() async throws {
        let accounts = harness.services.accounts
        try await harness.withPortal { browser in
            try await browser.signIn("alice", ServerHarness.password)
            _ = try await accounts.revokeAllSessions(of: "alice", by: .operator)
            do {
                let answer = try await browser.get("/account")
                XCTAssertEqual(answer.status, .seeOther)
            }

            try await browser.signIn("alice", ServerHarness.password)
            try await accounts.setPassword("alice", password: "another long password", by: .operator)
            do {
                let answer = try await browser.get("/account")
                XCTAssertEqual(answer.status, .seeOther)
            }

            try await browser.signIn("alice", "another long password")
            try await accounts.setActive("alice", false, by: .operator)
            do {
                let answer = try await browser.get("/account")
                XCTAssertEqual(answer.status, .seeOther)
            }
            try await browser.get("/signin")
            let refused = try await browser.post("/signin", [("username", "alice"), ("password", "another long password")])
            XCTAssertEqual(refused.status, .unauthorized)
        }
    }

    func testAnAdminRevokingTheBrowsersSessionSignsItOut() async throws {
        let services = harness.services
        try await harness.withPortal { browser in
            try await browser.signIn("alice", ServerHarness.password)
            let sessions = try await services.accounts.sessions(of: "alice", by: .operator)
            XCTAssertEqual(sessions.count, 1)
            try await services.accounts.revokeSession(sessions[0].family.id, of: "alice", by: .operator)
            do {
                let answer = try await browser.get("/account")
                XCTAssertEqual(answer.status, .seeOther)
            }
        }
    }

    func testNextGoesBackToAPortalPageButNeverToAnotherSite() async throws {
        try await harness.withPortal { browser in
            let redirected = try await browser.get("/account")
            XCTAssertEqual(redirected.location, "/signin?next=%2Faccount")
            for (next, expected) in [("/account", "/account"), ("//evil.example/x", "/account"), ("https://evil.example", "/account"), ("/\\evil.example", "/account")] {
                try await browser.get("/signin")
                let page = try await browser.post("/signin", [("username", "alice"), ("password", ServerHarness.password), ("next", next)])
                XCTAssertEqual(page.location, expected, next)
                browser.cookies["__Host-broker_session"] = nil
            }
        }
    }

    func testTheSixthWrongPasswordFromOneAddressIsThrottledLikeTheAPI() async throws {
        try await harness.withPortal { browser in
            try await browser.get("/signin")
            for _ in 0..<5 {
                let refused = try await browser.post("/signin", [("username", "alice"), ("password", "wrong password!")])
                XCTAssertEqual(refused.status, .unauthorized)
            }
            let throttled = try await browser.post("/signin", [("username", "alice"), ("password", ServerHarness.password)])
            XCTAssertEqual(throttled.status, .tooManyRequests)
            XCTAssertNotNil(throttled.headers[.retryAfter])
            XCTAssertTrue(throttled.text.contains(#"role="alert""#))
            // The API's login sees the same counters.
            let (status, _) = try await browser.client.postJSON(
                "/api/org_token/", #"{"username":"alice","password":"\#(ServerHarness.password)","org_name":"org1"}"#)
            XCTAssertEqual(status, .tooManyRequests)
        }
    }
}
