import Foundation
import XCTest

@testable import BrokerPortal

/// The templates compiled into the binary: the renderer's list is the folder's, each parses,
/// and none uses a form that would put a value into the page unescaped or run a script.
final class PortalTemplateTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/BrokerPortal/Resources/Templates")

    func testTheRendererKnowsEveryTemplateInTheFolder() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter { $0.hasSuffix(".mustache") }
        XCTAssertEqual(Set(files.map { String($0.dropLast(".mustache".count)) }), Set(PortalRenderer.templateSources.keys))
        for (name, source) in PortalRenderer.templateSources {
            XCTAssertEqual(source, Array(try Data(contentsOf: Self.folder.appendingPathComponent("\(name).mustache"))), name)
        }
        _ = PortalRenderer()  // parses every template (a parse error stops here)
    }

    func testNoTemplateShowsAValueUnescapedOrCarriesScriptOrInlineStyle() throws {
        let refused = [
            "{{{": "triple mustache (unescaped)", "{{&": "ampersand tag (unescaped)", "<script": "script element",
            "style=": "inline style (the CSP blocks it)", "javascript:": "javascript URL",
        ]
        let handler = try NSRegularExpression(pattern: #"\son[a-z]+\s*="#, options: [.caseInsensitive])
        let unquoted = try NSRegularExpression(pattern: #"\s[a-zA-Z-]+=\{\{"#)
        for (name, source) in PortalRenderer.templateSources {
            let text = String(decoding: source, as: UTF8.self)
            for (pattern, what) in refused {
                XCTAssertFalse(text.lowercased().contains(pattern), "\(name): \(what)")
            }
            let range = NSRange(text.startIndex..., in: text)
            XCTAssertNil(handler.firstMatch(in: text, range: range), "\(name): an inline event handler")
            XCTAssertNil(unquoted.firstMatch(in: text, range: range), "\(name): a value in an unquoted attribute")
        }
    }

    /// Mustache looks a name it does not find in the layout's `chrome` up in the page's view: a
    /// shared name would let a page's value stand in for the layout's (the sign-in form's
    /// `username` once showed a signed-out visitor the signed-in navigation).
    func testTheLayoutsNamesAreNoPagesNames() {
        let chrome = PageChrome(siteName: "s", title: "t", stylesheet: "/s.css")
        let layoutNames = Set(Mirror(reflecting: chrome).children.compactMap(\.label))
        let views: [Any] = [
            SignInView(chrome: chrome, csrf: "c", next: nil, username: "alice", error: nil),
            SignOutView(chrome: chrome, csrf: "c"),
            SignUpView(chrome: chrome, open: true, acceptsSignUps: true, csrf: "c", typedName: "alice"),
            GitHubDeviceView(chrome: chrome, userCode: "ABCD-1234", verificationURI: "https://github.com/login/device", interval: 5),
            ErrorView(chrome: chrome, heading: "h", message: "m", requestID: nil, backHref: "/", backLabel: "b"),
        ]
        for view in views {
            let names = Set(Mirror(reflecting: view).children.compactMap(\.label)).subtracting(["chrome"])
            XCTAssertEqual(names.intersection(layoutNames), [], "\(type(of: view))")
        }
        for name in [
            "formCSRF", "username", "githubLogin", "globalRole", "hasPassword", "memberships", "hasMemberships", "requests",
            "hasRequests", "joinable", "hasJoinable", "sessions", "membershipsError", "requestsError", "joinError",
            "sessionsError", "currentPasswordError", "newPasswordError", "confirmPasswordError", "githubEnabled", "githubError",
            // OrganizationView's
            "organization", "organizationPath", "cluster", "authority", "grantable", "members", "accessLifetime", "audiences",
            "brokerAccessLifetime", "snippet", "policyError",
            // the admin pages'
            "onUsers", "onOrgs", "onKeys", "onAudit", "users", "nextPage", "usernamePath", "status", "active", "passwordState",
            "roleOptions", "hasSessions", "actionError", "organizations", "keys", "since", "actor", "org", "action", "session",
            "limit", "events", "hasEvents", "filterError", "onInvites", "invitations", "hasInvitations", "newCode", "newCodeLink",
            "invitationsError",
        ] {
            XCTAssertFalse(layoutNames.contains(name), "AccountView's \(name)")
        }
        // A sign-in form that keeps a typed username shows no signed-in navigation.
        let page = PortalRenderer.shared.html(
            "signin", SignInView(chrome: chrome, csrf: "c", next: nil, username: "alice", error: "refused"))
        XCTAssertFalse(page.contains("nav-signout"), page)
        XCTAssertFalse(page.contains("/account"), page)
    }

    func testSafeRedirectKeepsTheBrowserOnThePortal() {
        for path in ["/account", "/orgs/org1", "/account?x=1"] { XCTAssertEqual(SafeRedirect.target(path), path) }
        for path in ["//evil.example", "/\\evil.example", "https://evil.example", "account", "/a b", "/a\u{0}", "", "/\u{7F}"] {
            XCTAssertEqual(SafeRedirect.target(path), "/account", path)
        }
        XCTAssertEqual(SafeRedirect.target(nil), "/account")
    }

    func testTheCookieReaderTakesACookieGivenExactlyOnce() {
        func value(_ headers: [String]) -> String? { PortalCookies.value("__Host-broker_session", inCookieHeaders: headers) }
        XCTAssertEqual(value(["a=1; __Host-broker_session=abc ; b=2"]), "abc")
        XCTAssertNil(value(["__Host-broker_session=abc; __Host-broker_session=def"]))
        XCTAssertNil(value(["__Host-broker_session=abc", "__Host-broker_session=abc"]))
        XCTAssertNil(value(["broker_session=abc"]))
        XCTAssertNil(value(["__Host-broker_session="]))
        XCTAssertNil(value([]))
        XCTAssertEqual(PortalCookies(secure: false).session, "broker_session")
        XCTAssertEqual(PortalCookies(secure: false).setting("broker_session", "v"), "broker_session=v; Path=/; HttpOnly; SameSite=Lax")
    }
}
