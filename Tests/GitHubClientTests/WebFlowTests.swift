import BrokerCore
import FakeGitHub
import Foundation
import GitHubClient
import XCTest

/// The OAuth web flow's code exchange against the fake: a code is good once, with the redirect
/// URI and PKCE verifier it was issued for, and only with the app's client secret, which no
/// error or description ever shows.
final class WebFlowTests: XCTestCase {
    var github: FakeGitHub!
    let clock = ManualWallClock()
    let secret = "app-s3cret-4b1d9e77c0"
    let callback = "http://127.0.0.1:8080/signin/github/callback"

    override func setUp() async throws {
        let clock = self.clock
        github = try await FakeGitHub.start(clientSecret: secret) { clock.now() }
        github.addUser(login: "alice", id: 42, token: "gho_alice", organizations: ["acme": .member])
        github.addToken("gho_alice_second", for: "alice")
    }

    override func tearDown() async throws {
        await github.stop()
    }

    /// A client with the app's secret (or `secret`).
    func client(secret: String? = nil) throws -> LibcurlGitHubClient {
        let secret = secret ?? self.secret
        return try github.client(clock: clock) { $0.clientSecret = secret }
    }

    /// A code alice approved for `callback`, and the verifier it is bound to.
    func approved() throws -> (code: String, verifier: String) {
        let verifier = GitHubWebFlow.newCodeVerifier()
        let challenge = GitHubWebFlow.codeChallenge(for: verifier)
        let code = try XCTUnwrap(github.authorize(login: "alice", redirectURI: callback, codeChallenge: challenge))
        return (code, verifier)
    }

    func testAnApprovedCodeIsExchangedForTheUsersToken() async throws {
        let client = try client()
        let (code, verifier) = try approved()
        let token = try await client.exchangeAuthorizationCode(code: code, redirectURI: callback, codeVerifier: verifier)
        XCTAssertEqual(token, "gho_alice", "the user's first token")
        let user = try await client.user(token: token)
        XCTAssertEqual(user.login, "alice")

        let request = try XCTUnwrap(github.requests(on: .accessToken).last)
        XCTAssertEqual(request.method, "POST")
        XCTAssertEqual(request.target, "/login/oauth/access_token")
        XCTAssertEqual(request.headers["accept"], "application/json")
        XCTAssertEqual(request.headers["content-type"], "application/x-www-form-urlencoded")
        XCTAssertNil(request.headers["authorization"])
        XCTAssertEqual(
            request.form,
            [
                "client_id": "fake-client-id", "client_secret": secret, "code": code, "redirect_uri": callback,
                "code_verifier": verifier,
            ])
    }

    func testACodeIsGoodOnce() async throws {
        let client = try client()
        let (code, verifier) = try approved()
        _ = try await client.exchangeAuthorizationCode(code: code, redirectURI: callback, codeVerifier: verifier)
        let again = await gitHubError { () async throws(GitHubError) in
            try await client.exchangeAuthorizationCode(code: code, redirectURI: callback, codeVerifier: verifier)
        }
        XCTAssertEqual(again, .authorizationCodeRejected("bad_verification_code"))
        let unknown = await gitHubError { () async throws(GitHubError) in
            try await client.exchangeAuthorizationCode(code: "0123456789abcdef0123", redirectURI: callback, codeVerifier: verifier)
        }
        XCTAssertEqual(unknown, .authorizationCodeRejected("bad_verification_code"))
    }

    func testAWrongVerifierIsRefusedAndSpendsTheCode() async throws {
        let client = try client()
        let (code, verifier) = try approved()
        let wrong = await gitHubError { () async throws(GitHubError) in
            try await client.exchangeAuthorizationCode(
                code: code, redirectURI: callback, codeVerifier: GitHubWebFlow.newCodeVerifier())
        }
        XCTAssertEqual(wrong, .authorizationCodeRejected("bad_verification_code"))
        // One guess per code: whoever holds a stolen code cannot try verifiers.
        let right = await gitHubError { () async throws(GitHubError) in
            try await client.exchangeAuthorizationCode(code: code, redirectURI: callback, codeVerifier: verifier)
        }
        XCTAssertEqual(right, .authorizationCodeRejected("bad_verification_code"))
    }

    func testAWrongClientSecretIsTheBrokersProblemAndLeavesTheCode() async throws {
        let (code, verifier) = try approved()
        let wrongSecret = try client(secret: "not-the-secret")
        let error = await gitHubError { () async throws(GitHubError) in
            try await wrongSecret.exchangeAuthorizationCode(code: code, redirectURI: callback, codeVerifier: verifier)
        }
        XCTAssertEqual(error, .unavailable("GitHub refused the authorization code exchange: incorrect_client_credentials"))
        let token = try await client().exchangeAuthorizationCode(code: code, redirectURI: callback, codeVerifier: verifier)
        XCTAssertEqual(token, "gho_alice")
    }

    func testAMismatchingRedirectURIIsRefused() async throws {
        let client = try client()
        let (code, verifier) = try approved()
        let error = await gitHubError { () async throws(GitHubError) in
            try await client.exchangeAuthorizationCode(
                code: code, redirectURI: "http://127.0.0.1:8080/elsewhere", codeVerifier: verifier)
        }
        XCTAssertEqual(error, .unavailable("GitHub refused the authorization code exchange: redirect_uri_mismatch"))
    }

    func testACodeExpiresAfterTenMinutes() async throws {
        let client = try client()
        let (code, verifier) = try approved()
        clock.advance(by: FakeGitHub.authorizationCodeLifetime)
        let error = await gitHubError { () async throws(GitHubError) in
            try await client.exchangeAuthorizationCode(code: code, redirectURI: callback, codeVerifier: verifier)
        }
        XCTAssertEqual(error, .authorizationCodeRejected("bad_verification_code"))
    }

    func testWithoutASecretOrWithAnImpossibleCodeNothingIsSent() async throws {
        let (code, verifier) = try approved()
        let noSecret = try client(secret: "")
        let unavailable = await gitHubError { () async throws(GitHubError) in
            try await noSecret.exchangeAuthorizationCode(code: code, redirectURI: callback, codeVerifier: verifier)
        }
        assertUnavailable(unavailable)
        let client = try client()
        for impossible in ["", String(repeating: "a", count: 1025)] {
            let error = await gitHubError { () async throws(GitHubError) in
                try await client.exchangeAuthorizationCode(code: impossible, redirectURI: callback, codeVerifier: verifier)
            }
            XCTAssertEqual(error, .authorizationCodeRejected("bad_verification_code"))
        }
        XCTAssertEqual(github.requestCount(on: .accessToken), 0)
    }

    func testAnAPIWithoutTheWebFlowAnswersUnavailable() async throws {
        struct DeviceFlowOnly: GitHubAPI {
            func user(token: String) async throws(GitHubError) -> GitHubUser { throw .unauthorized }
            func organizationMembership(token: String, organization: String, login: String) async throws(GitHubError)
                -> GitHubOrganizationMembership?
            { nil }
            func teams(token: String) async throws(GitHubError) -> [GitHubTeam] { [] }
            func requestDeviceCode(scope: String) async throws(GitHubError) -> GitHubDeviceCode { throw .unavailable("-") }
            func pollDeviceAuthorization(deviceCode: String) async throws(GitHubError) -> GitHubDevicePoll { .expired }
        }
        for api in [DeviceFlowOnly() as any GitHubAPI, MeasuredGitHubAPI.wrapping(DeviceFlowOnly())] {
            let error = await gitHubError { () async throws(GitHubError) in
                try await api.exchangeAuthorizationCode(code: "c", redirectURI: "r", codeVerifier: "v")
            }
            assertUnavailable(error)
        }
        // The measured wrapper forwards to a client that has the flow.
        let (code, verifier) = try approved()
        let measured = MeasuredGitHubAPI.wrapping(try client())
        let token = try await measured.exchangeAuthorizationCode(code: code, redirectURI: callback, codeVerifier: verifier)
        XCTAssertEqual(token, "gho_alice")
    }

    func testGitHubsFailuresAreReportedAsSuch() async throws {
        let client = try client()
        func exchange() async -> GitHubError? {
            await gitHubError { () async throws(GitHubError) in
                try await client.exchangeAuthorizationCode(code: "c0de", redirectURI: self.callback, codeVerifier: "v")
            }
        }
        github.inject(.status(502), on: .accessToken, times: 1)
        assertUnavailable(await exchange())
        github.inject(.malformedBody, on: .accessToken, times: 1)
        assertMalformed(await exchange())
        github.inject(.wrongShape, on: .accessToken, times: 1)
        assertMalformed(await exchange())
        github.inject(.status(429), on: .accessToken, times: 1)
        guard case .rateLimited = await exchange() else { return XCTFail("a 429 is a rate limit") }
        // On a new connection: libcurl sends a request again, once, when a kept-alive connection
        // dies before any answer.
        github.inject(.resetConnection, on: .accessToken, times: 1)
        let fresh = try self.client()
        assertUnavailable(
            await gitHubError { () async throws(GitHubError) in
                try await fresh.exchangeAuthorizationCode(code: "c0de", redirectURI: self.callback, codeVerifier: "v")
            })
    }

    /// Every way the exchange can fail, and the client's own description: none carries the
    /// secret, so no log line made of them (the broker logs errors by their description) can.
    func testTheSecretIsInNoErrorAndNoDescription() async throws {
        let wrongSecretClient = try client(secret: secret + "-old")
        let client = try client()
        var errors: [GitHubError] = []
        func collect(_ api: LibcurlGitHubClient, code: String, redirectURI: String, verifier: String) async {
            if let error = await gitHubError({ () async throws(GitHubError) in
                try await api.exchangeAuthorizationCode(code: code, redirectURI: redirectURI, codeVerifier: verifier)
            }) {
                errors.append(error)
            }
        }
        var (code, verifier) = try approved()
        await collect(wrongSecretClient, code: code, redirectURI: callback, verifier: verifier)
        await collect(client, code: code, redirectURI: callback + "/x", verifier: verifier)
        (code, verifier) = try approved()
        await collect(client, code: code, redirectURI: callback, verifier: "wrong")
        await collect(client, code: code, redirectURI: callback, verifier: verifier)
        for fault in [FakeGitHub.Fault.status(500), .status(401), .status(403), .malformedBody, .wrongShape, .closeConnection] {
            github.inject(fault, on: .accessToken, times: 1)
            await collect(client, code: "c0de", redirectURI: callback, verifier: verifier)
        }
        github.inject(.delay(.seconds(2)), on: .accessToken, times: 1)
        let impatient = try github.client(clock: clock, totalTimeout: .milliseconds(300)) { $0.clientSecret = self.secret }
        await collect(impatient, code: "c0de", redirectURI: callback, verifier: verifier)
        XCTAssertEqual(errors.count, 11)

        for error in errors {
            let shown = [
                "\(error)", String(reflecting: error), error.brokerError.detail, "\(error.brokerError)",
            ]
            for text in shown {
                XCTAssertFalse(text.contains(secret), text)
                XCTAssertFalse(text.contains("s3cret"), text)
            }
        }
        for configuration in [client.configuration, wrongSecretClient.configuration] {
            var dumped = ""
            dump(configuration, to: &dumped)
            for text in ["\(configuration)", String(reflecting: configuration), dumped] {
                XCTAssertFalse(text.contains("s3cret"), text)
                XCTAssertTrue(text.contains("clientSecret"), text)
                XCTAssertTrue(text.contains("fake-client-id"), "the rest is shown: \(text)")
            }
        }
        // Sent to GitHub, and only there.
        XCTAssertEqual(github.requests(on: .accessToken).first?.form["client_secret"], secret + "-old")
    }

    func testTheAuthorizeURLEncodesEveryValue() throws {
        let url = GitHubWebFlow.authorizeURL(
            webURL: "https://github.example.com/", clientID: "Iv1.0123abc",
            redirectURI: "https://broker.example.org/signin/github/callback?x=1&y=2",
            state: "a b+c/d=e&f#g~h_i-j.k%", codeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        XCTAssertEqual(
            url,
            "https://github.example.com/login/oauth/authorize?client_id=Iv1.0123abc"
                + "&redirect_uri=https%3A%2F%2Fbroker.example.org%2Fsignin%2Fgithub%2Fcallback%3Fx%3D1%26y%3D2"
                + "&scope=read%3Aorg&state=a%20b%2Bc%2Fd%3De%26f%23g~h_i-j.k%25"
                + "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256")
        // Beyond ASCII, every UTF-8 byte is encoded; a newline cannot split anything.
        let odd = GitHubWebFlow.authorizeURL(
            webURL: "https://github.com", clientID: "é", redirectURI: "r", state: "\r\n", codeChallenge: "c")
        XCTAssertTrue(odd.contains("client_id=%C3%A9&"), odd)
        XCTAssertTrue(odd.contains("state=%0D%0A&"), odd)
    }

    func testTheCodeChallengeIsRFC7636s() {
        // RFC 7636 appendix B.
        XCTAssertEqual(
            GitHubWebFlow.codeChallenge(for: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        let verifiers = (0..<20).map { _ in GitHubWebFlow.newCodeVerifier() }
        XCTAssertEqual(Set(verifiers).count, 20)
        for verifier in verifiers {
            XCTAssertEqual(verifier.count, 43)
            XCTAssertTrue(verifier.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }, verifier)
        }
    }
}
