import BrokerCore
import FakeGitHub
import Foundation
@testable import GitHubClient
import XCTest

/// Where the token may go: base URL rules and `Link` header handling.
final class URLSafetyTests: XCTestCase {
    func testPlainHTTPOnlyForLoopback() throws {
        for url in [
            "http://127.0.0.1:8080", "http://127.10.0.1", "http://localhost:1/api/v3", "http://LOCALHOST",
            "http://[::1]:9000", "https://api.github.com", "https://github.example.com/api/v3/",
        ] {
            XCTAssertNoThrow(try LibcurlGitHubClient(configuration: .init(apiURL: url)), url)
        }
        for url in [
            "http://api.github.com", "http://github.example.com/api/v3", "http://127.0.0.1.nip.io",
            "http://128.0.0.1", "http://[::2]", "http://10.0.0.1", "http://localhost.example.com",
            "ftp://127.0.0.1", "file:///etc/passwd", "api.github.com", "https://user:pw@api.github.com",
            "https://api.github.com/?x=1", "https://api.github.com:99999", "https://", "https://h/a/../b",
        ] {
            XCTAssertThrowsError(try LibcurlGitHubClient(configuration: .init(apiURL: url)), url) { error in
                XCTAssertTrue(error is GitHubClientConfigurationError)
            }
        }
        XCTAssertThrowsError(try LibcurlGitHubClient(configuration: .init(webURL: "http://github.com"))) { error in
            XCTAssertTrue("\(error)".contains("only allowed for loopback"), "\(error)")
        }
        XCTAssertThrowsError(try LibcurlGitHubClient(configuration: .init(apiURL: "https://x:hunter2@ghe.example.com"))) {
            XCTAssertFalse("\($0)".contains("hunter2"), "\($0)")
        }
        XCTAssertThrowsError(try LibcurlGitHubClient(configuration: .init(userAgent: "a\r\nX-Evil: 1")))
    }

    func testForeignNextLinkIsNotFollowed() async throws {
        let github = try await FakeGitHub.start()
        let foreign = try await FakeGitHub.start()
        github.addUser(login: "alice", token: "ghp_alice", teams: [(organization: "acme", slug: "a")])
        foreign.addUser(login: "alice", token: "ghp_alice", teams: [(organization: "acme", slug: "b")])
        let client = try github.client()

        let links = [
            "\(foreign.apiURL)/user/teams?page=2",  // another port: another origin
            "http://localhost:\(github.port)/user/teams?page=2",  // same server, other host name
            "\(github.apiURL)/user/../../evil",  // dot segments
            "\(github.apiURL):\(foreign.port)/user/teams",
            "\(github.apiURL)@127.0.0.1:\(foreign.port)/user/teams",
        ]
        for link in links {
            github.inject(.nextLink(link), on: .teams, times: 1)
            let error = await gitHubError { () async throws(GitHubError) in try await client.teams(token: "ghp_alice") }
            assertMalformed(error)
        }
        XCTAssertEqual(foreign.requestCount(), 0)
        XCTAssertEqual(github.requestCount(on: .teams), links.count)

        // A next link back to a page already fetched is a loop, not an endless walk.
        github.inject(.nextLink("\(github.apiURL)/user/teams?per_page=100"), on: .teams)
        assertMalformed(await gitHubError { () async throws(GitHubError) in try await client.teams(token: "ghp_alice") })
        github.clearFaults()
        await github.stop()
        await foreign.stop()
    }

    func testBaseURLContainment() throws {
        let base = try BaseURL("https://GHE.example.com:8443/api/v3/", name: "apiURL")
        XCTAssertEqual(base.string, "https://GHE.example.com:8443/api/v3")
        XCTAssertTrue(base.contains("https://ghe.example.com:8443/api/v3/user/teams?page=2"))
        XCTAssertFalse(base.contains("https://ghe.example.com:8443/api/v3"))
        XCTAssertFalse(base.contains("https://ghe.example.com:8443/api/v3x/user"))
        XCTAssertFalse(base.contains("https://ghe.example.com:8443.evil.com/api/v3/user"))
        XCTAssertFalse(base.contains("http://ghe.example.com:8443/api/v3/user"))
        XCTAssertFalse(base.contains("https://ghe.example.com/api/v3/user"))
        XCTAssertFalse(base.contains("https://ghe.example.com:8443/api/v3/%2e%2e/admin"))
        XCTAssertFalse(base.contains("https://ghe.example.com:8443/api/v3/user#frag"))
        XCTAssertEqual(base.appending("orgs", "a/b", "memberships", "c d"), "https://GHE.example.com:8443/api/v3/orgs/a%2Fb/memberships/c%20d")
    }

    func testLinkHeaderParsing() {
        let github = #"<https://api.github.com/user/teams?page=2>; rel="next", <https://api.github.com/user/teams?page=5>; rel="last""#
        XCTAssertEqual(LinkHeader.target(rel: "next", in: [github]), "https://api.github.com/user/teams?page=2")
        XCTAssertEqual(LinkHeader.target(rel: "last", in: [github]), "https://api.github.com/user/teams?page=5")
        XCTAssertNil(LinkHeader.target(rel: "prev", in: [github]))
        // Unquoted, multi-valued, reordered parameters, commas inside the URL, several headers.
        XCTAssertEqual(LinkHeader.target(rel: "next", in: ["<https://a/x?p=1,2>;rel=next"]), "https://a/x?p=1,2")
        XCTAssertEqual(LinkHeader.target(rel: "next", in: [#"<https://a/1>; title="a, b"; REL="prev next""#]), "https://a/1")
        XCTAssertEqual(LinkHeader.target(rel: "next", in: [#"<https://a/0>; rel="first""#, #"<https://a/2>; rel="next""#]), "https://a/2")
        XCTAssertNil(LinkHeader.target(rel: "next", in: [#"https://a/2; rel="next""#]))
        XCTAssertNil(LinkHeader.target(rel: "next", in: [#"<https://a/2; rel="next""#]))
        XCTAssertNil(LinkHeader.target(rel: "next", in: [#"<https://a/2>; rel="nextpage""#]))
    }
}
