import BrokerCore
import FakeGitHub
import GitHubClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// One JSON answer of the admin API: status, headers and the body's object (`[:]` when empty).
struct APIAnswer {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: [String: Any]

    var error: String? { body["error"] as? String }

    init(_ response: TestResponse) throws {
        let data = Data(response.body.readableBytesView)
        status = response.status
        headers = response.headers
        body = data.isEmpty ? [:] : (try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:])
    }
}

extension TestClientProtocol {
    /// Calls a route with an optional bearer token and JSON body.
    func api(
        _ method: HTTPRequest.Method, _ path: String, token: String? = nil, json: String? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> APIAnswer {
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        if json != nil { headers[.contentType] = "application/json" }
        return try await execute(
            uri: path, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) }, testCallback: APIAnswer.init)
    }

    /// A form-encoded POST (the OAuth endpoints).
    func form(_ path: String, _ body: String, token: String? = nil) async throws -> APIAnswer {
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        if let token { headers[.authorization] = "Bearer \(token)" }
        return try await execute(
            uri: path, method: .post, headers: headers, body: ByteBuffer(string: body), testCallback: APIAnswer.init)
    }

    /// A broker session token for a user of the harness.
    func sessionToken(_ username: String, password: String = ServerHarness.password) async throws -> String {
        let answer = try await api(
            .post, "/api/session", json: #"{"username":"\#(username)","password":"\#(password)"}"#)
        XCTAssertEqual(answer.status, .ok, "session sign-in of \(username): \(answer.body)")
        return try XCTUnwrap(answer.body["token"] as? String)
    }

    /// A generation-1 bundle (access, refresh) for one organization.
    func orgTokens(_ username: String, _ organization: String) async throws -> (access: String, refresh: String, status: HTTPResponse.Status) {
        let answer = try await api(
            .post, "/api/org_token/",
            json: #"{"username":"\#(username)","password":"\#(ServerHarness.password)","org_name":"\#(organization)"}"#)
        return (answer.body["access"] as? String ?? "", answer.body["refresh"] as? String ?? "", answer.status)
    }

    func refresh(_ token: String) async throws -> APIAnswer {
        try await api(.post, "/api/org_token/refresh/", json: #"{"refresh":"\#(token)"}"#)
    }
}

extension ServerHarness {
    /// A harness whose store also holds the global admin `root`.
    static func withAdmin(configure: (inout BrokerConfiguration) -> Void = { _ in }) async throws -> ServerHarness {
        let harness = try await make(configure: configure)
        let fixtures = AccountAdministration(
            store: harness.services.store, pool: harness.services.passwords, clock: harness.clock)
        try await fixtures.addUser("root", password: password, globalRole: .admin, by: .operator)
        return harness
    }
}

extension ServerHarness {
    /// A harness whose GitHub is a fake on loopback, sharing the harness's clock, with the GitHub
    /// organization `SlideRuleEarth` admitted into `sliderule` (the home organization) through
    /// `teams` (GitHub team slug: cluster). `configure` runs after that set-up.
    static func withFakeGitHub(
        teams: [String: String] = [:], configure: (inout BrokerConfiguration) -> Void = { _ in }
    ) async throws -> (FakeGitHub, ServerHarness) {
        let (github, client, clock) = try await FakeGitHub.startWithClient()
        do {
            let harness = try await make(githubAPI: client, clock: clock) { configuration in
                configuration.githubClientID = "fake-client-id"
                configuration.githubOrganizations = [
                    GitHubOrganizationMapping(organization: "sliderule", githubOrganization: "SlideRuleEarth", teams: teams)
                ]
                configuration.homeOrganization = "sliderule"
                configure(&configuration)
            }
            return (github, harness)
        } catch {
            await github.stop()
            throw error
        }
    }
}

extension FakeGitHub {
    /// A fake GitHub on loopback and the libcurl client that talks to it, on one manual clock
    /// (whole seconds, as tokens count them).
    static func startWithClient() async throws -> (FakeGitHub, LibcurlGitHubClient, ManualWallClock) {
        let clock = ManualWallClock(Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down)))
        let github = try await FakeGitHub.start(deviceInterval: 5, now: { clock.now() })
        let client = try LibcurlGitHubClient(
            configuration: .init(
                apiURL: github.apiURL, webURL: github.webURL, clientID: github.clientID, clientSecret: github.clientSecret,
                connectTimeout: .seconds(1), totalTimeout: .seconds(1)),
            clock: clock)
        return (github, client, clock)
    }
}
