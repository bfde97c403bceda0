import BrokerSync
import Foundation
import XCTest

/// The official SlideRule Python client of generation 1 (`sliderule==4.20.0` from PyPI, installed
/// by `scripts/test.sh` with `--no-deps --target .venv-tests/sliderule4`; its dependencies are
/// those of 5.7.0 in the same venv) logs in with a username and password against the real broker
/// binary and asks for nodes: `update_available_servers(desired_nodes=3, time_to_live=15)`, and
/// `sliderule.init(..., desired_nodes=3, time_to_live=15, bypass_dns=True)`, which also asks
/// `org_ip_adr` and checks the cluster's version.
///
/// As in ``SlideRuleClientTests``, the script mounts a transport adapter on every
/// `requests.Session` before the client makes its own: `https://ps.<domain>` goes to the broker
/// over plain HTTP on loopback (with `Host: ps.<domain>`, as a TLS-terminating proxy would pass
/// it), the cluster itself (`https://<org>.<domain>/discovery/status`, `/source/version`) is
/// answered by the adapter at once (three nodes up, so that `scaleout` never waits), and any other
/// request is refused. The stand-in provisioner is a scripted loopback server.
///
/// What 4.20.0 does (`sliderule/session.py`): `update_available_servers` GETs
/// `org_num_nodes/<org>/` with the bearer token, reads `rsps.json()` before `raise_for_status()`
/// and clamps the request to `min_nodes`/`max_nodes`; then POSTs `desired_org_num_nodes_ttl/<org>/<n>/<ttl>/`.
/// On an HTTP error it logs `rsps_body["error_msg"]`. `__jamdns` reads `rsps["status"]` of
/// `org_ip_adr` whatever the status.
final class SlideRuleGeneration1ClientTests: XCTestCase {
    static let domain = "broker.test"
    static let organization = "org1"
    static let username = "alice"
    static let password = "correct horse battery staple"
    static let version = "4.20.0"

    /// Where scripts/test.sh installs the 4.x client: `.venv-tests/sliderule4` in the repository.
    static var clientDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".venv-tests/sliderule4")
    }

    /// The venv's Python (`BROKER_TEST_PYTHON`), able to import the 4.x client.
    static var python: String {
        get throws {
            guard let python = ProcessInfo.processInfo.environment["BROKER_TEST_PYTHON"] else {
                throw XCTSkip(
                    "no Python for the generation-1 client: run `make test` (scripts/test.sh), or export "
                        + "BROKER_TEST_PYTHON=$PWD/.venv-tests/bin/python")
            }
            return try PyJWTInteropTests.python(
                python,
                passing: "import sys; sys.path.insert(0, sys.argv[1]); import sliderule; sys.exit(sliderule.__version__ != sys.argv[2])",
                arguments: [clientDirectory.path, version],
                missing: "sliderule \(version) is needed in \(clientDirectory.path): run the tests with `make test` (scripts/test.sh "
                    + "installs it with pip install --no-deps --target .venv-tests/sliderule4 sliderule==\(version))")
        }
    }

    struct Setup {
        var broker: BrokerBinary
        var server: Process
        var port: Int

        func stop() {
            server.terminate()
            server.waitUntilExit()
            broker.cleanUp()
        }
    }

    /// A broker with alice, a member of org1, serving on a free loopback port; `provisioner`
    /// (a URL) or none.
    func start(provisioner: String?) throws -> Setup {
        _ = try Self.python  // skip or fail early, before starting anything
        let broker = try BrokerBinary.make(extraConfig: provisioner.map { "provisioner_url: \"\($0)\"" } ?? "")
        do {
            for (arguments, stdin) in [
                (["users", "add", Self.username, "--password-stdin"], Self.password + "\n"),
                (["orgs", "add", Self.organization], nil),
                (["members", "add", Self.organization, Self.username], nil),
            ] {
                let result = try broker.run(arguments, stdin: stdin)
                XCTAssertEqual(result.status, 0, "\(arguments): \(result.stderr)")
            }
            let (server, port) = try broker.serve()
            try Self.script.write(to: broker.workDirectory.appendingPathComponent("client4.py"), atomically: true, encoding: .utf8)
            return Setup(broker: broker, server: server, port: port)
        } catch {
            broker.cleanUp()
            throw error
        }
    }

    /// Runs the script in `mode` (`update` or `init`) and returns what it wrote.
    func runClient(_ setup: Setup, mode: String) async throws -> [String: Any] {
        let result = setup.broker.workDirectory.appendingPathComponent("result-\(UUID().uuidString).json")
        let home = setup.broker.workDirectory.appendingPathComponent("home")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        // A clean environment: a temporary HOME (no ~/.netrc), no proxies, the credentials the
        // client reads itself (PS_USERNAME, PS_PASSWORD) for `init`.
        let environment = [
            "HOME": home.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", "PS_USERNAME": Self.username, "PS_PASSWORD": Self.password,
        ]
        let process = try ChildProcess(
            executable: try Self.python,
            arguments: [
                "-u", "client4.py", mode, Self.clientDirectory.path, Self.domain, Self.organization,
                "http://127.0.0.1:\(setup.port)", result.path,
            ],
            environment: environment, directory: setup.broker.workDirectory, timeout: 120)
        let (status, output) = await process.waitForExit()
        XCTAssertEqual(status, 0, output)
        guard let data = try? Data(contentsOf: result),
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            XCTFail("the client script wrote no result; its output:\n\(output)")
            throw CancellationError()
        }
        XCTAssertEqual(object["version"] as? String, Self.version)
        XCTAssertFalse(output.contains("KeyError"), output)
        return object
    }

    static func requests(_ result: [String: Any]) -> [String] {
        ((result["requests"] as? [[String: Any]]) ?? []).map { request in
            "\(request["method"] ?? "?") \(request["url"] ?? "?") \(request["status"].map { "\($0)" } ?? "-")"
        }
    }

    static func log(_ result: [String: Any]) -> [String] { result["log"] as? [String] ?? [] }

    /// A stand-in provisioner that answers as SlideRule's does, recording what it receives.
    static func standInProvisioner() throws -> ScriptedHTTPServer {
        try ScriptedHTTPServer { head in
            let body: String
            if head.hasPrefix("GET /api/org_num_nodes/") {
                body = #"{"status":"SUCCESS","min_nodes":1,"max_nodes":2,"current_nodes":1,"version":"latest"}"#
            } else if head.hasPrefix("GET /api/org_ip_adr/") {
                body = #"{"status":"SUCCESS","ip_address":"192.0.2.10"}"#
            } else {
                body = #"{"status":"SUCCESS","msg":"desired nodes recorded"}"#
            }
            return .bytes(ScriptedAnswer.http(headers: ["Content-Type: application/json"], body: Array(body.utf8)))
        }
    }

    // MARK: - With a provisioner

    func testTheClientScalesThroughTheBrokerToTheProvisioner() async throws {
        let provisioner = try Self.standInProvisioner()
        defer { provisioner.stop() }
        let setup = try start(provisioner: "http://127.0.0.1:\(provisioner.port)")
        defer { setup.stop() }
        let result = try await runClient(setup, mode: "update")

        XCTAssertEqual(result["logged_in"] as? Bool, true, "\(Self.log(result))")
        XCTAssertNil(result["exception"] as? String)
        // The provisioner's max_nodes (2) clamps the 3 asked for; the cluster says 3 are up.
        XCTAssertEqual(result["requested"] as? Int, 2)
        XCTAssertEqual(result["available"] as? Int, 3)
        XCTAssertTrue(Self.log(result).contains("INFO Provisioning system desired nodes overridden to 2"), "\(Self.log(result))")
        let ps = "https://ps.\(Self.domain)/api"
        XCTAssertEqual(Self.requests(result), [
            "POST \(ps)/org_token/ 200",
            "GET \(ps)/org_num_nodes/\(Self.organization)/ 200",
            "POST \(ps)/desired_org_num_nodes_ttl/\(Self.organization)/2/15/ 200",
            "GET https://\(Self.organization).\(Self.domain)/discovery/status 200",
        ])

        // What the provisioner received: the calls, alice's identity, no token.
        let heads = provisioner.received
        XCTAssertEqual(heads.map { $0.split(separator: "\r\n").first.map(String.init) ?? "" }, [
            "GET /api/org_num_nodes/org1/ HTTP/1.1",
            "POST /api/desired_org_num_nodes_ttl/org1/2/15/ HTTP/1.1",
        ])
        for head in heads {
            let fields = ScalingHTTPTests.fields(head)
            XCTAssertEqual(fields["x-sliderule-account"], ["alice"], head)
            XCTAssertEqual(fields["x-sliderule-org-roles"], ["member"], head)
            XCTAssertEqual(fields["x-forwarded-host"], ["ps.\(Self.domain)"], head)
            XCTAssertEqual(fields["x-forwarded-for"], ["127.0.0.1"], head)
            XCTAssertNil(fields["authorization"], head)
            XCTAssertEqual(fields["user-agent"]?.first?.hasPrefix("python-requests/"), true, head)
        }

        // The change is in the audit trail.
        let audit = try String(contentsOf: setup.broker.workDirectory.appendingPathComponent("data/audit.log"), encoding: .utf8)
        let scale = audit.split(separator: "\n").filter { $0.contains(#""action":"cluster.scale""#) }
        XCTAssertEqual(scale.count, 1, audit)
        XCTAssertTrue(scale.first?.contains(#""reason":"desired_nodes=2 ttl=15""#) ?? false, audit)
        XCTAssertTrue(scale.first?.contains(#""actor":"alice""#) ?? false, audit)
    }

    func testInitWithDesiredNodesAndBypassDNS() async throws {
        let provisioner = try Self.standInProvisioner()
        defer { provisioner.stop() }
        let setup = try start(provisioner: "http://127.0.0.1:\(provisioner.port)/")
        defer { setup.stop() }
        let result = try await runClient(setup, mode: "init")

        XCTAssertNil(result["exception"] as? String, "\(Self.log(result))")
        XCTAssertEqual(result["init"] as? Bool, true, "\(Self.log(result))")
        XCTAssertEqual(result["dns"] as? [String: String], ["\(Self.organization).\(Self.domain)": "192.0.2.10"])
        let requests = Self.requests(result)
        let ps = "https://ps.\(Self.domain)/api"
        for expected in [
            "GET \(ps)/org_ip_adr/\(Self.organization)/ 200", "GET \(ps)/org_num_nodes/\(Self.organization)/ 200",
            "POST \(ps)/desired_org_num_nodes_ttl/\(Self.organization)/2/15/ 200",
        ] {
            XCTAssertTrue(requests.contains(expected), "\(expected) not in \(requests)")
        }
        XCTAssertEqual(provisioner.received.count, 3)
    }

    // MARK: - Without a provisioner

    func testWithoutAProvisionerTheClientPrintsTheBrokersMessage() async throws {
        let setup = try start(provisioner: nil)
        defer { setup.stop() }
        let result = try await runClient(setup, mode: "update")

        XCTAssertEqual(result["logged_in"] as? Bool, true, "\(Self.log(result))")
        XCTAssertNil(result["exception"] as? String, "no KeyError: the 501 carries error_msg")
        XCTAssertEqual(result["requested"] as? Int, 3, "nothing clamped the request")
        XCTAssertEqual(result["available"] as? Int, 3)
        let ps = "https://ps.\(Self.domain)/api"
        XCTAssertEqual(Self.requests(result), [
            "POST \(ps)/org_token/ 200",
            "GET \(ps)/org_num_nodes/\(Self.organization)/ 501",
            "POST \(ps)/desired_org_num_nodes_ttl/\(Self.organization)/3/15/ 501",
            "GET https://\(Self.organization).\(Self.domain)/discovery/status 200",
        ])
        let log = Self.log(result)
        for prefix in ["INFO Provisioning system status request returned error => ", "ERROR Provisioning system update request error => "] {
            let line = log.first { $0.hasPrefix(prefix) }
            XCTAssertNotNil(line, "no \(prefix) in \(log)")
            XCTAssertTrue(line?.contains("scaling is not handled by this broker") ?? false, line ?? "")
            XCTAssertTrue(line?.contains("provisioner_url") ?? false, line ?? "")
        }
    }

    func testInitWithoutAProvisionerNeitherDiesNorWaits() async throws {
        let setup = try start(provisioner: nil)
        defer { setup.stop() }
        let start = ContinuousClock.now
        let result = try await runClient(setup, mode: "init")
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(60))

        // org_ip_adr's 501 carries status FAILED: the client keeps the DNS as it is.
        XCTAssertNil(result["exception"] as? String, "\(Self.log(result))")
        XCTAssertEqual(result["init"] as? Bool, true, "\(Self.log(result))")
        XCTAssertEqual(result["dns"] as? [String: String], [:])
        XCTAssertTrue(Self.requests(result).contains("GET https://ps.\(Self.domain)/api/org_ip_adr/\(Self.organization)/ 501"))
        XCTAssertTrue(Self.log(result).contains { $0.hasPrefix("ERROR Provisioning system update request error => scaling is not handled") })
    }

    // MARK: - The client script

    /// argv: mode (`update`: Session, authenticate, update_available_servers; `init`:
    /// sliderule.init with desired_nodes and bypass_dns, credentials from PS_USERNAME and
    /// PS_PASSWORD), the 4.x client's directory, domain, organization, broker base URL, result path.
    static let script = #"""
        import io, json, logging, os, sys, urllib.parse
        from pathlib import Path

        mode, client_dir, domain, org, broker, result_path = sys.argv[1:7]
        sys.path.insert(0, client_dir)  # the 4.x client first; its dependencies come from the venv
        import requests, requests.adapters, urllib3

        ps_host = "ps." + domain
        cluster_host = org + "." + domain
        seen = []

        class BrokerAdapter(requests.adapters.HTTPAdapter):
            """https://ps.<domain> goes to the broker on loopback, as if a TLS-terminating proxy stood
            in front of it; the cluster's own answers come from here; anything else is refused."""
            def send(self, request, **kwargs):
                url = urllib.parse.urlsplit(request.url)
                entry = {"method": request.method, "url": request.url, "status": None}
                seen.append(entry)
                if url.scheme == "https" and url.hostname == cluster_host and url.port is None:
                    response = self.cluster(request, url.path)
                elif url.scheme == "https" and url.hostname == ps_host and url.port is None:
                    request.url = broker + urllib.parse.urlunsplit(("", "", url.path, url.query, ""))
                    request.headers["Host"] = ps_host
                    response = super().send(request, **kwargs)
                else:
                    raise requests.exceptions.ConnectionError("test transport: refusing " + request.url)
                entry["status"] = response.status_code
                return response

            def cluster(self, request, path):
                if path == "/discovery/status":
                    body = {"nodes": 3}
                elif path == "/source/version":
                    body = {"server": {"version": "v4.20.0"}}
                else:
                    raise requests.exceptions.ConnectionError("test transport: no cluster route " + path)
                raw = urllib3.HTTPResponse(
                    body=io.BytesIO(json.dumps(body).encode()), headers={"Content-Type": "application/json"},
                    status=200, preload_content=False)
                return self.build_response(request, raw)

        \#(SlideRuleClientScript.adapterOnEverySessionAndLogCapture)

        import sliderule
        import sliderule.session
        # Importing the client makes a session for the public cluster, which tries to log in to
        # ps.slideruleearth.io with PS_USERNAME (refused above): not what is under test.
        seen.clear()
        log.clear()

        result = {"version": sliderule.__version__}
        try:
            if mode == "update":
                # No organization yet: no login at construction; then the client's own password login.
                session = sliderule.session.Session(domain=domain, organization=None)
                result["logged_in"] = session.authenticate(
                    org, ps_username=os.environ["PS_USERNAME"], ps_password=os.environ["PS_PASSWORD"])
                available, requested = session.update_available_servers(desired_nodes=3, time_to_live=15)
                result["available"], result["requested"] = available, requested
            else:
                result["init"] = sliderule.init(
                    url=domain, organization=org, desired_nodes=3, time_to_live=15, bypass_dns=True)
                result["dns"] = dict(sliderule.session.sliderule_dns)
        except Exception as error:
            result["exception"] = type(error).__name__ + ": " + str(error)
        result["requests"] = seen
        result["log"] = log
        Path(result_path).write_text(json.dumps(result))
        """#
}
