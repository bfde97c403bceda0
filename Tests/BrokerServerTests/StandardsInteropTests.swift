import FakeGitHub
import Foundation
import XCTest

/// Libraries nobody here wrote, used as a third-party developer would (issue 15):
/// `Tests/Interop/standards_interop.py` validates the RFC 8414 metadata field by field (and with
/// authlib's validator), verifies access tokens from the JWKS alone as RFC 9068 resource servers
/// (authlib, joserfc, PyJWT), refreshes through `/oauth/token` with two OAuth 2 clients (authlib,
/// requests-oauthlib) and revokes with one, against the release binary of each signing
/// algorithm, with token exchange through a fake GitHub on loopback.
final class StandardsInteropTests: XCTestCase {
    static let issuer = "http://127.0.0.1:8080"
    static let pat = "ghp_alice_standards_interop"

    /// The tests' Python with the pinned libraries (scripts/test.sh installs them).
    static var python: String {
        get throws {
            let python = try PyJWTInteropTests.python
            return try PyJWTInteropTests.python(
                python, passing: "import authlib, joserfc, requests_oauthlib",
                missing: "authlib, joserfc and requests-oauthlib are needed in \(python): run the tests with `make test`")
        }
    }

    func interoperate(_ algorithm: String) async throws {
        let python = try Self.python
        let github = try await FakeGitHub.start()
        github.addUser(login: "alice-gh", id: 5151, token: Self.pat, organizations: [:])
        do {
            let broker = try BrokerBinary.makeWithAliceInOrg1(
                extraConfig: """
                    signing_alg: \(algorithm)
                    github_api_url: "\(github.apiURL)"
                    github_web_url: "\(github.webURL)"
                    """)
            defer { broker.cleanUp() }
            XCTAssertEqual(try broker.run(["users", "link-github", "alice", "alice-gh"]).status, 0)
            let (server, port) = try broker.serve()
            defer {
                server.terminate()
                server.waitUntilExit()
            }
            let root = OpenAPIContract.repositoryRoot
            let environment = ProcessInfo.processInfo.environment.filter { !$0.key.lowercased().hasSuffix("_proxy") }
                .merging(["PYTHONDONTWRITEBYTECODE": "1"]) { $1 }
            let script = try ChildProcess(
                executable: python,
                arguments: [
                    "-u", root.appendingPathComponent("Tests/Interop/standards_interop.py").path,
                    "http://127.0.0.1:\(port)", Self.issuer, algorithm, Self.pat,
                ],
                environment: environment, directory: root, timeout: 120)
            let (status, output) = await script.waitForExit()
            XCTAssertEqual(status, 0, "standards_interop.py \(algorithm):\n\(output)")
            XCTAssertTrue(output.contains("ok \(algorithm)"), output)
        } catch {
            await github.stop()
            throw error
        }
        await github.stop()
    }

    func testRS256WithThirdPartyLibraries() async throws { try await interoperate("RS256") }
    func testES256WithThirdPartyLibraries() async throws { try await interoperate("ES256") }
    func testEdDSAWithThirdPartyLibraries() async throws { try await interoperate("EdDSA") }
    /// RFC 9864's name: joserfc verifies it; PyJWT 2.15 does not know it (the script skips it).
    func testEd25519WithThirdPartyLibraries() async throws { try await interoperate("Ed25519") }
}
