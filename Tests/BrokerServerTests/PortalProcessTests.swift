import Foundation
import XCTest

/// `broker serve` and the portal: on by default, off with `portal: off`, and a development
/// setting that refuses to start where it would weaken the cookies; hostile requests to the
/// pages answer pages, never a crash.
final class PortalProcessTests: XCTestCase {
    func testThePortalIsOnByDefaultAndOffWithTheSetting() async throws {
        for (config, expected) in [("", 200), ("portal: off", 404)] {
            let broker = try BrokerBinary.make(extraConfig: config)
            defer { broker.cleanUp() }
            let (server, port) = try broker.serve()
            defer { server.terminate(); server.waitUntilExit() }
            var client = PortalProcessClient()
            let page = try await client.send("GET", port, "/signin")
            XCTAssertEqual(page.status, expected, config)
            if expected == 200 {
                XCTAssertEqual(page.header("Content-Type"), "text/html; charset=utf-8")
                XCTAssertNotNil(page.header("Content-Security-Policy"))
            }
            // The API is there either way.
            let jwks = try await client.send("GET", port, "/.well-known/jwks.json")
            XCTAssertEqual(jwks.status, 200)
        }
    }

    func testInsecureCookiesAreRefusedOutsideLoopbackDevelopment() throws {
        let broker = try BrokerBinary.make(extraConfig: "issuer: \"https://login.example.org\"\nportal_insecure_cookies: true")
        defer { broker.cleanUp() }
        let result = try broker.run(["serve", "--port", "0"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("portal_insecure_cookies"), result.stderr)
    }

    /// Hostile paths, parameters and headers against the release or debug binary: each answer
    /// is an HTTP answer (a page, a redirect or the API's JSON 404), and the server lives on.
    func testHostileRequestsGetAnswersNotACrash() async throws {
        let broker = try BrokerBinary.make(extraConfig: "portal_signup: open")
        defer { broker.cleanUp() }
        let (server, port) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }
        var client = PortalProcessClient()
        let paths = [
            "/signin?next=%0d%0aSet-Cookie:%20x=1", "/signin?next=//evil.example", "/orgs/%2e%2e%2fadmin", "/orgs/%00",
            "/orgs/%ZZ", "/admin/users/%C0%AF", "/account/sessions/..%2f..%2fadmin/signout", "/orgs/" + String(repeating: "a", count: 4000),
            "/signin?notice=%3Cscript%3E", "/portal/style-0000000000000000.css",
        ]
        for path in paths {
            let answer = try await client.send("GET", port, path)
            XCTAssertTrue([200, 303, 400, 404, 405, 414, 431].contains(answer.status), "\(path): \(answer.status)")
            XCTAssertFalse(answer.body.contains("<script>"), path)
            XCTAssertNil(answer.header("Set-Cookie").flatMap { $0.contains("x=1") ? $0 : nil }, path)
        }
        // A cookie header of many cookies, and a session cookie of the wrong shape.
        client.cookies = Dictionary(uniqueKeysWithValues: (0..<200).map { ("c\($0)", String(repeating: "v", count: 20)) })
        client.cookies["__Host-broker_session"] = "../../etc/passwd"
        let answer = try await client.send("GET", port, "/account")
        XCTAssertTrue([303, 431].contains(answer.status), "\(answer.status)")
        // Still serving.
        var fresh = PortalProcessClient()
        let signIn = try await fresh.send("GET", port, "/signin")
        XCTAssertEqual(signIn.status, 200)
        XCTAssertTrue(server.isRunning)
    }
}
