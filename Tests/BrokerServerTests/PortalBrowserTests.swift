import FakeGitHub
import Foundation
import XCTest

/// The portal in a real browser: `Tests/Browser/portal_browser.py` drives headless Chromium
/// (Selenium 4.51.0 from the tests' venv, Debian's chromium and chromium-driver) against a
/// `broker serve` of its own, one scenario per test. What only a browser shows is checked there:
/// the cookie flags the browser kept, the headers it received, Content Security Policy
/// violations in its console, layout at 360 and 1280 px, labels, TAB order and focus styles.
/// Screenshots go to `.build/portal-screenshots/<page>@<width>.png`.
///
/// Skipped without `BROKER_TEST_CHROMEDRIVER` (exported by scripts/test.sh when
/// /usr/bin/chromedriver is installed; scripts/sanitize.sh leaves it unset) or without
/// `BROKER_TEST_PYTHON` (the venv's Python, with selenium).
final class PortalBrowserTests: XCTestCase {
    static let username = "alice"
    static let password = "correct horse battery staple"
    /// The whole scenario, browser start included; the script is terminated past it.
    static let timeLimit: TimeInterval = 180

    func testCookieAndContentSecurityPolicy() async throws {
        try await run("cookie_and_csp")
    }

    func testPagesAtTwoWidthsWithLabelsTabOrderAndFocus() async throws {
        try await run("pages")
    }

    func testANewcomerSignsUpAndAsksToJoin() async throws {
        try await run("signup_and_request")
    }

    /// Sign up, ask, an owner approves, the snippet to a token, an admin disables, all gone.
    func testTheWholeFlowFromSignUpToDisabling() async throws {
        try await run("whole_flow")
    }

    /// A non-member's 403 page, a forged CSRF token, a hostile User-Agent.
    func testRefusalsAForgedFormAndAHostileUserAgent() async throws {
        try await run("refusals")
    }

    /// A GitHub sign-in through the fake GitHub's own device page, in a second tab.
    func testGitHubSignInThroughTheFakeGitHub() async throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["BROKER_TEST_CHROMEDRIVER"] != nil, "no browser for this test")
        let github = try await FakeGitHub.start(deviceInterval: 1)
        github.addUser(login: "octo", token: "ghp_octo_portal", organizations: ["OctoOrg": .member])
        let config = """
            github_api_url: "\(github.apiURL)"
            github_web_url: "\(github.webURL)"
            github_client_id: "\(github.clientID)"
            github_orgs:
              octo:
                github_org: OctoOrg
            """
        do {
            try await run("github_signin", extraConfig: config, fixtures: [["orgs", "add", "octo"]], arguments: ["--github-login", "octo"])
        } catch {
            await github.stop()
            throw error
        }
        await github.stop()
    }

    /// Starts a broker with alice, runs `portal_browser.py scenario` against it, and asserts it
    /// exited 0, showing its output (and the broker's log) otherwise.
    func run(
        _ scenario: String, extraConfig: String = "", fixtures: [[String]] = [], arguments extra: [String] = []
    ) async throws {
        let environment = ProcessInfo.processInfo.environment
        try XCTSkipUnless(
            environment["BROKER_TEST_CHROMEDRIVER"] != nil,
            "no browser for this test: run `make test` (scripts/test.sh exports BROKER_TEST_CHROMEDRIVER when "
                + "/usr/bin/chromedriver is installed, see scripts/install-deps.sh test), or export "
                + "BROKER_TEST_CHROMEDRIVER=/usr/bin/chromedriver")
        try XCTSkipUnless(
            environment["BROKER_TEST_PYTHON"] != nil,
            "no Python with Selenium for this test: run `make test` (scripts/test.sh installs selenium==4.51.0 in "
                + ".venv-tests), or export BROKER_TEST_PYTHON=$PWD/.venv-tests/bin/python")
        let python = environment["BROKER_TEST_PYTHON"]!

        // BrokerBinary's configuration already makes argon2id cheap and sets login_failure_floor_ms: 0.
        let broker = try BrokerBinary.make(extraConfig: "portal_signup: open\n" + extraConfig)
        defer { broker.cleanUp() }
        // alice is a global admin and owns org1 (below): every page is hers to show.
        let created = try broker.run(["users", "add", Self.username, "--admin", "--password-stdin"], stdin: Self.password + "\n")
        XCTAssertEqual(created.status, 0, created.stderr)
        // alice owns org1: the account page shows its table, the organization page is hers.
        for command in [["orgs", "add", "org1", "--cluster", "cluster1"], ["members", "add", "org1", Self.username, "--role", "owner"]]
            + fixtures
        {
            let result = try broker.run(command)
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        let log = broker.workDirectory.appendingPathComponent("serve.log")
        XCTAssertTrue(FileManager.default.createFile(atPath: log.path, contents: nil))
        let (server, port) = try broker.serve(standardError: try FileHandle(forWritingTo: log))
        defer {
            server.terminate()
            server.waitUntilExit()
        }

        let root = OpenAPIContract.repositoryRoot
        let shots = root.appendingPathComponent(".build/portal-screenshots")
        // The caller's environment (BROKER_TEST_CHROMEDRIVER names the driver), without proxies:
        // everything here is on loopback.
        var scriptEnvironment = environment.filter { !$0.key.lowercased().hasSuffix("_proxy") }
        scriptEnvironment["PYTHONDONTWRITEBYTECODE"] = "1"
        let started = Date()
        let script = try ChildProcess(
            executable: python,
            arguments: [
                "-u", root.appendingPathComponent("Tests/Browser/portal_browser.py").path, scenario,
                "--base", "http://localhost:\(port)", "--shots", shots.path,
                "--username", Self.username, "--password", Self.password,
            ] + extra,
            environment: scriptEnvironment, directory: root, timeout: Self.timeLimit)
        let (status, output) = await script.waitForExit()
        let elapsed = Date().timeIntervalSince(started)
        let limit = elapsed >= Self.timeLimit ? " (terminated at the \(Int(Self.timeLimit)) s limit)" : ""
        XCTAssertEqual(
            status, 0,
            "portal_browser.py \(scenario) exited \(status) after \(Int(elapsed)) s\(limit):\n\(output)\n"
                + "the broker's log (last 4,000 characters):\n"
                + String(((try? String(contentsOf: log, encoding: .utf8)) ?? "").suffix(4000)))
    }
}
