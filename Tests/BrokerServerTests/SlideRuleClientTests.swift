import BrokerSync
import FakeGitHub
import Foundation
import XCTest

/// The official SlideRule Python client (`sliderule==5.7.0` from PyPI, installed in
/// `.venv-tests` by `scripts/test.sh`) logs in against the real broker binary, which checks the
/// GitHub identity with a fake GitHub on loopback.
///
/// The client addresses `https://login.<domain>/auth/github/...` through a `requests.Session` of
/// its own. The test script mounts a transport adapter on every `requests.Session` before the
/// client creates its own: requests for `https://login.<domain>` go to the broker over plain HTTP
/// on loopback (with `Host: login.<domain>`, as a TLS-terminating proxy would forward them), and
/// any other request is refused, so nothing leaves the machine. The client's code is otherwise
/// untouched: its own constructor and `authenticate()` build the URL, send the request, read the
/// answer and write its token cache under a temporary HOME.
///
/// What 5.7.0 does (see `sliderule/session.py`): `Session(domain, cluster)` for a private cluster
/// calls `authenticate()`, which takes the PAT from `SLIDERULE_GITHUB_TOKEN` (or the
/// `github_token` argument) and POSTs `{"pat"}` to `/auth/github/pat`; it is logged in when the
/// answer has `status == "success"`, then keeps `token` and `metadata` and plans to renew at half
/// of `metadata.exp`. A PAT login neither reads nor writes `~/.cache/sliderule/ps_access_token.json`;
/// only the device flow does (it stores the whole success answer and reuses it while
/// `metadata.exp` is in the future), so the cache is checked through the device flow.
final class SlideRuleClientTests: XCTestCase {
    static let domain = "broker.test"
    static let loginURL = "https://login.broker.test"
    /// The broker organization, whose cluster name is the same (the client's `cluster`).
    static let organization = "earthlab"
    static let githubOrganization = "EarthLab"
    static let pat = "ghp_alice_sliderule_client_test"

    /// A fake GitHub with alice (an active member of the GitHub org), and a broker whose org is
    /// mapped to that GitHub org, serving on a free loopback port.
    struct Setup {
        var github: FakeGitHub
        var broker: BrokerBinary
        var server: Process
        var port: Int
        var home: URL

        func stop() async {
            server.terminate()
            server.waitUntilExit()
            await github.stop()
            broker.cleanUp()
        }
    }

    func start() async throws -> Setup {
        _ = try Self.python  // fail early, before starting anything
        let github = try await FakeGitHub.start(deviceInterval: 1)
        github.addUser(login: "alice", id: 4242, token: Self.pat, organizations: [Self.githubOrganization: .member])
        let broker: BrokerBinary
        do {
            broker = try BrokerBinary.make(
                extraConfig: """
                    issuer: "\(Self.loginURL)"
                    github_api_url: "\(github.apiURL)"
                    github_web_url: "\(github.webURL)"
                    github_client_id: "\(github.clientID)"
                    home_org: "\(Self.organization)"
                    github_orgs:
                      \(Self.organization):
                        github_org: "\(Self.githubOrganization)"
                    """)
            XCTAssertEqual(try broker.run(["orgs", "add", Self.organization]).status, 0)
            let (server, port) = try broker.serve()
            let home = broker.workDirectory.appendingPathComponent("home")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            try Self.script.write(to: broker.workDirectory.appendingPathComponent("client.py"), atomically: true, encoding: .utf8)
            return Setup(github: github, broker: broker, server: server, port: port, home: home)
        } catch {
            await github.stop()
            throw error
        }
    }

    /// The virtual environment's Python, with the pinned client installed.
    static var python: String {
        get throws {
            let python = try PyJWTInteropTests.python
            return try PyJWTInteropTests.python(
                python, passing: "import importlib.metadata as m, sys; sys.exit(m.version('sliderule') != '5.7.0')",
                missing: "sliderule 5.7.0 is needed in \(python): run the tests with `make test` (scripts/test.sh installs it)")
        }
    }

    /// Starts the client script: `pat` or `device` login, then the session's state as JSON.
    func runClient(_ setup: Setup, mode: String, pat: String? = nil) throws -> (ChildProcess, URL) {
        let result = setup.broker.workDirectory.appendingPathComponent("result-\(UUID().uuidString).json")
        // A clean environment: the temporary HOME (the client's cache lives under it), no proxies
        // or GitHub token inherited from the caller, and a no-op browser for the device flow.
        var environment = [
            "HOME": setup.home.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "BROWSER": "true", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
        ]
        if let pat { environment["SLIDERULE_GITHUB_TOKEN"] = pat }
        let process = try ChildProcess(
            executable: try Self.python,
            arguments: [
                "-u", "client.py", mode, Self.domain, Self.organization, "http://127.0.0.1:\(setup.port)", result.path,
            ],
            environment: environment, directory: setup.broker.workDirectory, timeout: 120)
        return (process, result)
    }

    static func result(_ url: URL, _ output: String) throws -> [String: Any] {
        guard let data = try? Data(contentsOf: url),
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            XCTFail("the client script wrote no result; its output:\n\(output)")
            throw CancellationError()
        }
        return object
    }

    static func requests(_ result: [String: Any]) -> [String] {
        ((result["requests"] as? [[String: Any]]) ?? []).map { request in
            "\(request["method"] ?? "?") \(request["url"] ?? "?") \(request["status"].map { "\($0)" } ?? "-")"
        }
    }

    static var cacheFile: String { ".cache/sliderule/ps_access_token.json" }

    // MARK: - PAT login

    func testOfficialClientLogsInWithAPAT() async throws {
        let setup = try await start()
        do {
            let (client, resultURL) = try runClient(setup, mode: "pat", pat: Self.pat)
            let (status, output) = await client.waitForExit()
            XCTAssertEqual(status, 0, output)
            let result = try Self.result(resultURL, output)

            XCTAssertEqual(result["version"] as? String, "5.7.0")
            XCTAssertEqual(result["home"] as? String, setup.home.path)
            XCTAssertEqual(Self.requests(result), ["POST \(Self.loginURL)/auth/github/pat 200"])
            XCTAssertEqual(result["logged_in"] as? Bool, true, "\(result["log"] ?? "")")
            XCTAssertTrue((result["log"] as? [String] ?? []).contains("INFO Login status to \(Self.loginURL): success"))
            XCTAssertFalse(output.contains(Self.pat), "the PAT must not appear in the client's output")
            XCTAssertGreaterThanOrEqual(setup.github.requestCount(on: .user, token: Self.pat), 1)

            // What the client kept: our token and its claims.
            let token = try XCTUnwrap(result["token"] as? String)
            let metadata = try XCTUnwrap(result["metadata"] as? [String: Any])
            let exp = try XCTUnwrap(metadata["exp"] as? Int)
            let now = Int(Date().timeIntervalSince1970)
            XCTAssertGreaterThan(exp, now + 3600)
            XCTAssertEqual(metadata["sub"] as? String, "alice")
            XCTAssertEqual(metadata["org_roles"] as? [String], ["member"])
            XCTAssertEqual(metadata["memberships"] as? [String: [String]], [Self.organization: ["member"]])
            XCTAssertTrue((metadata["amr"] as? [String] ?? []).contains("github_pat"), "\(metadata)")
            let claims = try XCTUnwrap(result["claims"] as? [String: Any])  // the client's own decoding
            XCTAssertEqual(claims["iss"] as? String, Self.loginURL)
            XCTAssertEqual(claims["aud"] as? [String], [Self.organization])
            XCTAssertEqual(claims["exp"] as? Int, exp)
            // The client renews at half the remaining lifetime.
            let renewAt = try XCTUnwrap(result["refresh_at"] as? Int)
            XCTAssertTrue(now < renewAt && renewAt < exp, "renew at \(renewAt), exp \(exp)")

            // 5.7.0 caches device-flow logins only: a PAT login leaves no cache file.
            XCTAssertNil(result["cache"] as? [String: Any])
            XCTAssertFalse(FileManager.default.fileExists(atPath: setup.home.appendingPathComponent(Self.cacheFile).path))

            // The broker itself accepts the token for the org's cluster.
            let verified = try setup.broker.run(["token", "verify", token, "--audience", Self.organization])
            XCTAssertEqual(verified.status, 0, verified.stdout + verified.stderr)
            XCTAssertTrue(verified.stdout.hasPrefix("valid"), verified.stdout)
            XCTAssertTrue(verified.stdout.contains("alice"), verified.stdout)
        } catch {
            await setup.stop()
            throw error
        }
        await setup.stop()
    }

    func testOfficialClientReportsARevokedPAT() async throws {
        let setup = try await start()
        do {
            let revoked = "ghp_alice_revoked"
            setup.github.addToken(revoked, for: "alice")
            setup.github.revoke(token: revoked)
            let (client, resultURL) = try runClient(setup, mode: "pat", pat: revoked)
            let (status, output) = await client.waitForExit()
            XCTAssertEqual(status, 0, output)
            let result = try Self.result(resultURL, output)

            XCTAssertEqual(Self.requests(result), ["POST \(Self.loginURL)/auth/github/pat 401"])
            XCTAssertEqual(result["logged_in"] as? Bool, false)
            XCTAssertNil(result["token"] as? String)
            XCTAssertNil(result["metadata"] as? [String: Any])
            // The client logs the broker's error body and a failed login; it raises nothing.
            let log = result["log"] as? [String] ?? []
            XCTAssertTrue(
                log.contains { $0.hasPrefix("ERROR Failure attempting to authenticate:") && $0.contains("'error': 'github_token_invalid'") },
                "\(log)")
            XCTAssertTrue(log.contains("INFO Login status to \(Self.loginURL): failure"), "\(log)")
            XCTAssertFalse(output.contains(revoked), "the PAT must not appear in the client's output")
            XCTAssertFalse(FileManager.default.fileExists(atPath: setup.home.appendingPathComponent(Self.cacheFile).path))
            XCTAssertEqual(setup.github.requestCount(on: .user, token: revoked), 1)
        } catch {
            await setup.stop()
            throw error
        }
        await setup.stop()
    }

    // MARK: - Device flow and the token cache

    func testOfficialClientCachesADeviceFlowLoginAndReusesIt() async throws {
        let setup = try await start()
        do {
            let deviceToken = "gho_alice_device"
            setup.github.addToken(deviceToken, for: "alice")

            // The client prints the user code and polls; "the user" approves it on GitHub.
            let (client, resultURL) = try runClient(setup, mode: "device")
            let userCode = try await client.waitForOutput(matching: #"enter this code: (\S+)"#, timeout: 60)
            setup.github.approveDevice(userCode: userCode, token: deviceToken)
            let (status, output) = await client.waitForExit()
            XCTAssertEqual(status, 0, output)
            let result = try Self.result(resultURL, output)

            let requests = Self.requests(result)
            XCTAssertEqual(requests.first, "POST \(Self.loginURL)/auth/github/device 200")
            XCTAssertEqual(requests.last, "POST \(Self.loginURL)/auth/github/device/poll 200")
            XCTAssertTrue(requests.dropFirst().allSatisfy { $0.hasPrefix("POST \(Self.loginURL)/auth/github/device/poll ") }, "\(requests)")
            XCTAssertEqual(result["logged_in"] as? Bool, true, "\(result["log"] ?? "")")
            XCTAssertTrue(output.contains("success"), output)

            // The cache under the temporary HOME holds the broker's answer: our token, exp ahead.
            let token = try XCTUnwrap(result["token"] as? String)
            let cache = try XCTUnwrap(result["cache"] as? [String: Any], "no \(Self.cacheFile) under HOME")
            XCTAssertEqual(cache["status"] as? String, "success")
            XCTAssertEqual(cache["token"] as? String, token)
            let metadata = try XCTUnwrap(cache["metadata"] as? [String: Any])
            XCTAssertGreaterThan(try XCTUnwrap(metadata["exp"] as? Int), Int(Date().timeIntervalSince1970) + 3600)
            XCTAssertEqual(metadata["sub"] as? String, "alice")
            XCTAssertTrue((metadata["amr"] as? [String] ?? []).contains("github_device"), "\(metadata)")
            let attributes = try FileManager.default.attributesOfItem(
                atPath: setup.home.appendingPathComponent(Self.cacheFile).path)
            XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)

            let verified = try setup.broker.run(["token", "verify", token, "--audience", Self.organization])
            XCTAssertEqual(verified.status, 0, verified.stdout + verified.stderr)

            // A second run of the client logs in from the cache without a request.
            let (again, againURL) = try runClient(setup, mode: "device")
            let (againStatus, againOutput) = await again.waitForExit()
            XCTAssertEqual(againStatus, 0, againOutput)
            let second = try Self.result(againURL, againOutput)
            XCTAssertEqual(Self.requests(second), [])
            XCTAssertEqual(second["logged_in"] as? Bool, true)
            XCTAssertEqual(second["token"] as? String, token)
        } catch {
            await setup.stop()
            throw error
        }
        await setup.stop()
    }

    // MARK: - The client script

    /// argv: mode (`pat`: the PAT comes from SLIDERULE_GITHUB_TOKEN; `device`), domain, cluster,
    /// broker base URL, result path.
    static let script = #"""
        import json, logging, sys, urllib.parse
        from pathlib import Path
        import requests, requests.adapters

        mode, domain, cluster, broker, result_path = sys.argv[1:6]
        login_host = "login." + domain
        seen = []

        class BrokerAdapter(requests.adapters.HTTPAdapter):
            """Requests for https://login.<domain> go to the broker on loopback, as if a TLS-terminating
            proxy stood in front of it; anything else is refused, so nothing leaves loopback."""
            def send(self, request, **kwargs):
                url = urllib.parse.urlsplit(request.url)
                entry = {"method": request.method, "url": request.url, "status": None}
                seen.append(entry)
                if url.scheme != "https" or url.hostname != login_host or url.port is not None:
                    raise requests.exceptions.ConnectionError("test transport: refusing " + request.url)
                request.url = broker + urllib.parse.urlunsplit(("", "", url.path, url.query, ""))
                request.headers["Host"] = login_host
                response = super().send(request, **kwargs)
                entry["status"] = response.status_code
                return response

        \#(SlideRuleClientScript.adapterOnEverySessionAndLogCapture)

        import sliderule

        # The client's own login path: a session for a private cluster calls authenticate(), which
        # logs in with SLIDERULE_GITHUB_TOKEN when it is set, and otherwise runs the device flow
        # (reusing ~/.cache/sliderule/ps_access_token.json while its metadata.exp is ahead).
        session = sliderule.create_session(domain=domain, cluster=cluster)

        cache_file = Path.home() / ".cache" / "sliderule" / "ps_access_token.json"
        token = session.ps_access_token
        result = {
            "version": sliderule.__version__,
            "home": str(Path.home()),
            "logged_in": token is not None,
            "token": token,
            "metadata": session.ps_metadata,
            "refresh_at": session.ps_token_exp,
            "claims": session.authenticator.info()[1] if token else None,
            "cache": json.loads(cache_file.read_text()) if cache_file.exists() else None,
            "requests": seen,
            "log": log,
        }
        Path(result_path).write_text(json.dumps(result))
        """#
}

/// A child process run without blocking Swift concurrency's threads: a thread of its own collects
/// its standard output and error as they arrive and waits for its exit; it is killed after
/// `timeout` seconds.
final class ChildProcess: @unchecked Sendable {
    // `process` is configured and started in `init`; afterwards only the reader thread and the
    // watchdog touch it, through Foundation's thread-safe `waitUntilExit`/`isRunning`/`terminate`.
    private let process = Process()
    private let collected = Locked(Data())
    private let exitStatus = Locked<Int32?>(nil)

    init(executable: String, arguments: [String], environment: [String: String], directory: URL, timeout: TimeInterval) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = directory
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let reader = pipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                collected.withLock { $0.append(chunk) }
            }
            process.waitUntilExit()
            let status = process.terminationStatus
            exitStatus.withLock { $0 = status }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [self] in
            if process.isRunning { process.terminate() }
        }
    }

    var output: String { collected.withLock { String(decoding: $0, as: UTF8.self) } }

    /// The exit status and everything the process wrote.
    func waitForExit() async -> (Int32, String) {
        while true {
            if let status = exitStatus.withLock({ $0 }) { return (status, output) }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The first capture group of `pattern` once the output matches it.
    func waitForOutput(matching pattern: String, timeout: TimeInterval) async throws -> String {
        let expression = try NSRegularExpression(pattern: pattern)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = output
            if let match = expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
                let range = Range(match.range(at: 1), in: text)
            {
                return String(text[range])
            }
            if exitStatus.withLock({ $0 }) != nil { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("no output matching \(pattern) (exited: \(exitStatus.withLock { $0 }.map(String.init) ?? "no")):\n\(output)")
        throw CancellationError()
    }
}
