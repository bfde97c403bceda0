import BrokerCore
import Foundation
import HTTPTypes
import XCTest

/// The portal's defences over HTTP: CSRF refusals that change nothing, the security headers on
/// every page and error page (and none on the API), escaping of what clients send, and forms
/// the broker does not read.
final class PortalSecurityHTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        harness = try await ServerHarness.make()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    static let headers: [(HTTPField.Name, String)] = [
        (HTTPField.Name("Content-Security-Policy")!,
         "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        (HTTPField.Name("X-Frame-Options")!, "DENY"),
        (.xContentTypeOptions, "nosniff"),
        (HTTPField.Name("Referrer-Policy")!, "no-referrer"),
        (HTTPField.Name("Cross-Origin-Opener-Policy")!, "same-origin"),
        (.cacheControl, "no-store"),
        (.contentType, "text/html; charset=utf-8"),
    ]

    static func assertSecurityHeaders(_ page: PortalBrowser.Page, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        for (name, value) in Self.headers {
            XCTAssertEqual(page.headers[name], value, "\(name) of \(what)", file: file, line: line)
        }
    }

    func testSignOutWithoutAValidTokenIsRefusedAndChangesNothing() async throws {
        try await harness.withPortal { browser in
            try await browser.signIn("alice", ServerHarness.password)
            let other = PortalBrowser(browser.client)
            try await other.signIn("alice", ServerHarness.password)
            try await other.get("/account")
            let othersToken = try XCTUnwrap(PortalBrowser.csrfToken(in: other.lastPage))
            try await browser.get("/account")
            let ownToken = try XCTUnwrap(PortalBrowser.csrfToken(in: browser.lastPage))
            XCTAssertNotEqual(ownToken, othersToken, "a token per session")
            for (token, what) in [(String?.none, "no token"), ("forged", "a forged token"), (othersToken, "another session's token")] {
                let refused = try await browser.post("/signout", [], csrf: .some(token))
                XCTAssertEqual(refused.status, .forbidden, what)
                XCTAssertTrue(refused.text.contains("This form has expired"), what)
                Self.assertSecurityHeaders(refused, "the 403 page")
                do {
                    let answer = try await browser.get("/account")
                    XCTAssertEqual(answer.status, .ok, "still signed in after \(what)")
                }
            }
            let crossSite = try await browser.post("/signout", [], headers: [HTTPField.Name("Sec-Fetch-Site")!: "cross-site"])
            XCTAssertEqual(crossSite.status, .forbidden)
            do {
                let answer = try await browser.get("/account")
                XCTAssertEqual(answer.status, .ok)
            }
        }
        XCTAssertFalse(try harness.auditLines().contains { $0["action"] as? String == "session.revoke" })
    }

    func testTheSignInFormIsBoundToItsBrowser() async throws {
        try await harness.withPortal { browser in
            try await browser.get("/signin")
            let token = try XCTUnwrap(PortalBrowser.csrfToken(in: browser.lastPage))
            // An attacker's page posting for another browser: no pre-session cookie, or another's.
            let stranger = PortalBrowser(browser.client)
            var refused = try await stranger.post("/signin", [("username", "alice"), ("password", ServerHarness.password)], csrf: .some(token))
            XCTAssertEqual(refused.status, .forbidden)
            try await stranger.get("/signin")
            refused = try await stranger.post("/signin", [("username", "alice"), ("password", ServerHarness.password)], csrf: .some(token))
            XCTAssertEqual(refused.status, .forbidden)
            XCTAssertNil(stranger.cookies["__Host-broker_session"])
        }
        XCTAssertFalse(try harness.auditLines().contains { $0["action"] as? String == "session.login" }, "refused before any login")
    }

    func testEveryPortalAnswerCarriesTheSecurityHeadersAndTheAPIsDoNot() async throws {
        try await harness.withPortal { browser in
            Self.assertSecurityHeaders(try await browser.get("/signin"), "/signin")
            try await browser.signIn("alice", ServerHarness.password)
            Self.assertSecurityHeaders(try await browser.get("/account"), "/account")
            Self.assertSecurityHeaders(try await browser.get("/signout"), "/signout")
            let redirect = try await browser.get("/")
            XCTAssertEqual(redirect.headers[HTTPField.Name("Content-Security-Policy")!], Self.headers[0].1)
            let api = try await browser.get("/.well-known/jwks.json")
            XCTAssertEqual(api.status, .ok)
            XCTAssertNil(api.headers[HTTPField.Name("Content-Security-Policy")!])
            XCTAssertEqual(api.headers[.contentType], "application/jwk-set+json")
            // The stylesheet the pages name, cacheable for good.
            let page = try await browser.get("/account")
            let href = try XCTUnwrap(page.text.range(of: #"/portal/style-[0-9a-f]{16}\.css"#, options: .regularExpression).map { String(page.text[$0]) })
            let css = try await browser.get(href)
            XCTAssertEqual(css.status, .ok)
            XCTAssertEqual(css.headers[.contentType], "text/css; charset=utf-8")
            XCTAssertEqual(css.headers[.cacheControl], "public, max-age=31536000, immutable")
            XCTAssertTrue(css.text.contains(":focus-visible"))
        }
    }

    func testWhatAClientSendsIsShownEscaped() async throws {
        let hostile = #"<script>alert("ua")</script> & 'quoted'"#
        try await harness.withPortal { browser in
            browser.userAgent = hostile
            try await browser.signIn("alice", ServerHarness.password)
            let account = try await browser.get("/account")
            XCTAssertFalse(account.text.contains("<script>"), "no markup from a client")
            XCTAssertTrue(account.text.contains("&lt;script&gt;alert(&quot;ua&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;"), account.text)
            // A hostile username typed into the form is shown back escaped too.
            browser.cookies["__Host-broker_session"] = nil
            try await browser.get("/signin")
            let refused = try await browser.post("/signin", [("username", #""><script>x</script>"#), ("password", "whatever password")])
            XCTAssertEqual(refused.status, .unauthorized)
            XCTAssertFalse(refused.text.contains("<script>x"))
            XCTAssertTrue(refused.text.contains("&quot;&gt;&lt;script&gt;x&lt;/script&gt;"))
        }
    }

    func testFormsTheBrokerDoesNotReadGetAPageNotACrash() async throws {
        try await harness.withPortal { browser in
            try await browser.signIn("alice", ServerHarness.password)
            try await browser.get("/account")
            let token = try XCTUnwrap(PortalBrowser.csrfToken(in: browser.lastPage))
            let cases: [(String, String, HTTPResponse.Status)] = [
                ("application/json", "{}", .badRequest),
                ("application/x-www-form-urlencoded", "csrf=\(token)&csrf=\(token)", .badRequest),
                ("application/x-www-form-urlencoded", "csrf=\(token)&x=%00", .badRequest),
                ("application/x-www-form-urlencoded", "csrf=%ZZ", .badRequest),
                ("application/x-www-form-urlencoded", String(repeating: "a", count: 70_000), .contentTooLarge),
            ]
            for (type, body, status) in cases {
                let page = try await browser.send(
                    "/signout", method: .post, body: body, headers: [.contentType: type])
                XCTAssertEqual(page.status, status, "\(type) \(body.prefix(40))")
                XCTAssertEqual(page.headers[.contentType], "text/html; charset=utf-8")
            }
            do {
                let answer = try await browser.get("/account")
                XCTAssertEqual(answer.status, .ok)
            }
            let missing = try await browser.get("/account/nothing-here")
            XCTAssertEqual(missing.status, .notFound)
        }
    }
}
