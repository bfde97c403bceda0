import BrokerCore
import Foundation
import HTTPTypes
import XCTest

/// `/signup` over HTTP: closed by default, open on `portal_signup: open`, the account rules of
/// every account, errors next to their fields, a throttle per address, the audit lines.
final class PortalSignUpHTTPTests: XCTestCase {
    static let password = "a long enough password"

    func testClosedByDefault() async throws {
        let harness = try await ServerHarness.make()
        try await harness.withPortal { browser in
            let page = try await browser.get("/signup")
            XCTAssertEqual(page.status, .ok)
            XCTAssertTrue(page.text.contains("does not take sign-ups"))
            XCTAssertFalse(page.text.contains(#"action="/signup""#))
            let signIn = try await browser.get("/signin")
            XCTAssertFalse(signIn.text.contains(#"href="/signup""#))
            let refused = try await browser.post("/signup", [("username", "carol"), ("password", Self.password), ("confirm", Self.password)])
            XCTAssertEqual(refused.status, .forbidden)
            XCTAssertNil(browser.cookies["__Host-broker_session"])
        }
        let users = try await harness.services.accounts.users()
        XCTAssertFalse(users.contains { $0.username == "carol" })
        try await harness.shutdown()
    }

    func testOpenSignUpCreatesTheAccountAndSignsTheBrowserIn() async throws {
        let harness = try await ServerHarness.make { $0.portalSignup = .open }
        try await harness.withPortal { browser in
            let signIn = try await browser.get("/signin")
            XCTAssertTrue(signIn.text.contains(#"href="/signup""#))
            try await browser.get("/signup")
            let created = try await browser.post("/signup", [("username", "carol"), ("password", Self.password), ("confirm", Self.password)])
            XCTAssertEqual(created.status, .seeOther, created.text)
            XCTAssertEqual(created.location, "/account?notice=welcome")
            XCTAssertNotNil(browser.cookies["__Host-broker_session"])
            XCTAssertNil(browser.cookies["__Host-broker_pre"])
            let account = try await browser.get("/account?notice=welcome")
            XCTAssertEqual(account.status, .ok)
            XCTAssertTrue(account.text.contains("carol"))
            XCTAssertTrue(account.text.contains("Welcome!"))
            let login = try await browser.client.api(
                .post, "/api/session", json: #"{"username":"carol","password":"\#(Self.password)"}"#)
            XCTAssertEqual(login.status, .ok)
            XCTAssertNil((login.body["user"] as? [String: Any])?["global_role"] as? String)
        }
        let lines = try harness.auditLines()
        let create = try XCTUnwrap(lines.first { $0["action"] as? String == "user.create" })
        XCTAssertEqual(create["actor"] as? String, "signup")
        XCTAssertEqual(create["target"] as? String, "carol")
        XCTAssertEqual(create["reason"] as? String, "signup")
        XCTAssertEqual(create["outcome"] as? String, "success")
        XCTAssertTrue(lines.contains { $0["action"] as? String == "session.login" && $0["reason"] as? String == "signup" })
        XCTAssertFalse(harness.logs.all.contains { $0.contains(Self.password) })
        try await harness.shutdown()
    }

    func testRefusalsAreShownNextToTheirFields() async throws {
        let harness = try await ServerHarness.make { $0.portalSignup = .open }
        try await harness.withPortal { browser in
            try await browser.get("/signup")
            let cases: [(String, String, String, HTTPResponse.Status, String)] = [
                ("bad name", Self.password, Self.password, .badRequest, "username-error"),
                ("Alice", Self.password, Self.password, .conflict, "username-error"),
                ("carol", "short", "short", .badRequest, "password-error"),
                ("carol", Self.password, "another one entirely", .badRequest, "confirm-error"),
            ]
            for (name, password, confirm, status, field) in cases {
                let page = try await browser.post("/signup", [("username", name), ("password", password), ("confirm", confirm)])
                XCTAssertEqual(page.status, status, name)
                XCTAssertTrue(page.text.contains(#"id="\#(field)""#), "\(name): \(page.text)")
                XCTAssertTrue(page.text.contains(#"aria-invalid="true""#), name)
                XCTAssertFalse(page.text.contains(password), "the password is never shown back")
            }
            let hostile = try await browser.post(
                "/signup", [("username", #"<b>x</b>"#), ("password", Self.password), ("confirm", Self.password)])
            XCTAssertEqual(hostile.status, .badRequest)
            XCTAssertFalse(hostile.text.contains("<b>x</b>"))
            XCTAssertTrue(hostile.text.contains("&lt;b&gt;x&lt;/b&gt;"))
        }
        let refused = try harness.auditLines().filter { $0["action"] as? String == "user.create" }
        XCTAssertEqual(refused.count, 4, "the mismatch never reached the core")
        XCTAssertEqual(refused.compactMap { $0["target"] as? String }, ["Alice", "carol"], "names the policy refuses are not written")
        try await harness.shutdown()
    }

    func testSignUpsFromOneAddressAreThrottled() async throws {
        let harness = try await ServerHarness.make {
            $0.portalSignup = .open
            $0.portalSignupThrottleIP = 2
        }
        try await harness.withPortal { browser in
            for name in ["carol", "dave"] {
                try await browser.get("/signup")
                let page = try await browser.post("/signup", [("username", name), ("password", Self.password), ("confirm", Self.password)])
                XCTAssertEqual(page.status, .seeOther)
                browser.cookies["__Host-broker_session"] = nil
            }
            try await browser.get("/signup")
            let page = try await browser.post("/signup", [("username", "erin"), ("password", Self.password), ("confirm", Self.password)])
            XCTAssertEqual(page.status, .tooManyRequests)
            XCTAssertNotNil(page.headers[.retryAfter])
            XCTAssertTrue(page.text.contains("too many sign-ups"))
        }
        let users = try await harness.services.accounts.users()
        XCTAssertFalse(users.contains { $0.username == "erin" })
        try await harness.shutdown()
    }
}
