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
            let form = try await browser.get("/signin")
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
            let account = try await browser.get("/account")
            XCTAssertEqual(account.status, .ok)
            XCTAssertTrue(account.text.contains("carol"))
        }
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
}
