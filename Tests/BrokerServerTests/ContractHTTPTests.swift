import BrokerCore
import BrokerCrypto
import BrokerServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

/// `openapi.yaml`: served as it is in the repository, a valid OpenAPI 3.1 document that
/// documents every route the router has (and no other), and kept by live answers of every
/// route family. scripts/schemathesis.sh fuzzes the same contract; this needs no Python.
final class ContractHTTPTests: XCTestCase {
    var harness: ServerHarness!
    var contract: OpenAPIContract!

    override func setUp() async throws {
        harness = try await ServerHarness.make(githubAPI: RefusingGitHub()) { $0.githubClientID = "contract-tests" }
        try await harness.services.accounts.addUser("root", password: ServerHarness.password, globalRole: .admin, by: .operator)
        contract = try OpenAPIContract.load()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    func testTheContractIsServedAsInTheRepository() async throws {
        let file = try Data(contentsOf: OpenAPIContract.canonicalFile)
        let atRoot = try Data(contentsOf: OpenAPIContract.repositoryRoot.appendingPathComponent("openapi.yaml"))
        XCTAssertEqual(atRoot, file, "openapi.yaml at the repository root must be the link to the canonical file")
        try await harness.withClient { client in
            for path in ["/openapi.yaml", "/openapi.yaml/"] {
                try await client.execute(uri: path, method: .get) { response in
                    XCTAssertEqual(response.status, .ok, path)
                    XCTAssertEqual(response.headers[.contentType], "application/yaml", path)
                    XCTAssertEqual(Data(response.body.readableBytesView), file, path)
                }
            }
        }
    }

    func testTheContractIsOpenAPI31() throws {
        let version = try XCTUnwrap(contract.document["openapi"]?.string)
        XCTAssertTrue(version.hasPrefix("3.1."), "openapi: \(version)")
        XCTAssertNotNil(contract.document["info"]?["title"]?.string)
        // Every $ref must land somewhere: a dangling one would make checks pass vacuously.
        var references: [String] = []
        func collect(_ node: JSONValue) {
            switch node {
            case .object(let members):
                if let reference = members["$ref"]?.string { references.append(reference) }
                members.values.forEach(collect)
            case .array(let items): items.forEach(collect)
            default: break
            }
        }
        collect(contract.document)
        XCTAssertFalse(references.isEmpty)
        for reference in Set(references) {
            XCTAssertNoThrow(try contract.resolve(.object(["$ref": .string(reference)])), reference)
        }
    }

    /// Adding a route without documenting it (or documenting one that does not exist) fails here.
    func testEveryRouteIsDocumentedAndEveryOperationIsARoute() throws {
        let router = BrokerApplication.router(services: harness.services)
        let routes = Set(router.routes.map { "\($0.method) \(OpenAPIContract.withoutTrailingSlash($0.path.description))" })
        XCTAssertGreaterThan(routes.count, 40)
        let documented = contract.operations
        XCTAssertEqual(routes.subtracting(documented).sorted(), [], "routes missing from openapi.yaml")
        // GET /metrics exists only when `broker serve` gives the router a metrics registry.
        XCTAssertEqual(documented.subtracting(routes).subtracting(["GET /metrics"]).sorted(), [], "documented operations without a route")
    }

    /// The per-status code lists of the contract are `ErrorCode`'s, so a new code cannot be
    /// answered with a status the contract does not expect.
    func testErrorCodesAreTheCataloguesByStatus() throws {
        let schemas = try XCTUnwrap(contract.document["components"]?["schemas"])
        let statusOfSchema = [
            "BadRequestCode": 400, "UnauthorizedCode": 401, "ForbiddenCode": 403, "NotFoundCode": 404,
            "MethodNotAllowedCode": 405, "ConflictCode": 409, "PayloadTooLargeCode": 413,
            "UnsupportedMediaTypeCode": 415, "TooManyAttemptsCode": 429, "InternalErrorCode": 500, "NotImplementedCode": 501,
            "BadGatewayCode": 502, "UnavailableCode": 503, "GatewayTimeoutCode": 504,
        ]
        var listed: [String] = []
        for (name, status) in statusOfSchema {
            let codes = try XCTUnwrap(schemas[name]?["enum"]?.array, name).compactMap(\.string)
            let expected = ErrorCode.allCases.filter { $0.httpStatus == status }.map(\.rawValue)
            XCTAssertEqual(Set(codes), Set(expected), name)
            listed += codes
        }
        XCTAssertEqual(Set(listed), Set(ErrorCode.allCases.map(\.rawValue)))
        let all = try XCTUnwrap(schemas["ErrorCode"]?["anyOf"]?.array).compactMap { $0["$ref"]?.string }
        XCTAssertEqual(Set(all), Set(statusOfSchema.keys.map { "#/components/schemas/\($0)" }))
    }

    /// The checker itself: an answer the contract does not allow is caught, or the live test
    /// below would prove nothing.
    func testTheCheckerRejectsWhatTheContractDoesNotAllow() throws {
        func violations(_ method: HTTPRequest.Method, _ uri: String, _ status: HTTPResponse.Status, _ headers: HTTPFields, _ body: String) -> [String] {
            contract.violations(of: LiveAnswer(method: method, uri: uri, status: status, headers: headers, body: Array(body.utf8)))
        }
        let json: HTTPFields = [.contentType: "application/json"]
        XCTAssertEqual(violations(.get, "/healthz", .ok, json, #"{"status":"ok"}"#), [])
        XCTAssertEqual(violations(.get, "/healthz/", .ok, json, #"{"status":"ok"}"#), [], "trailing slash")
        XCTAssertEqual(violations(.get, "/healthz", .ok, json, #"{"status":"ok","extra":1}"#).count, 1)
        XCTAssertEqual(violations(.get, "/healthz", .ok, json, #"{"status":"fine"}"#).count, 1)
        XCTAssertEqual(violations(.get, "/healthz", .ok, [.contentType: "text/plain"], "ok").count, 1)
        XCTAssertEqual(violations(.get, "/healthz", .init(code: 418), json, "{}").count, 1)
        XCTAssertEqual(violations(.get, "/nowhere", .ok, json, "{}").count, 1)
        let unauthorized = #"{"error":"invalid_token","detail":"expired"}"#
        XCTAssertEqual(violations(.get, "/api/session", .unauthorized, json, unauthorized).count, 1, "no WWW-Authenticate")
        let challenge = json.merging([.wwwAuthenticate: #"Bearer realm="broker""#])
        XCTAssertEqual(violations(.get, "/api/session", .unauthorized, challenge, unauthorized), [])
        XCTAssertEqual(
            violations(.get, "/api/session", .unauthorized, json.merging([.wwwAuthenticate: "Bearer"]), unauthorized).count, 1,
            "a challenge without the realm")
        XCTAssertEqual(
            violations(.get, "/api/session", .unauthorized, challenge, #"{"error":"forbidden","detail":""}"#).count,
            1, "a 403 code under 401")
        XCTAssertEqual(violations(.get, "/api/admin/users/bob", .ok, json, #"{"id":1}"#).count, 7, "seven members missing")
    }

    /// Drives every route family through its success and error answers and checks each one
    /// against the contract: status, media type, required headers, body schema.
    func testLiveAnswersKeepTheContract() async throws {
        let contract = self.contract!
        try await harness.withClient { client in
            var answers: [LiveAnswer] = []
            func call(
                _ method: HTTPRequest.Method, _ uri: String, token: String? = nil, json: String? = nil,
                form: String? = nil, headers extra: HTTPFields = [:]
            ) async throws -> LiveAnswer {
                var headers = extra
                if let token { headers[.authorization] = "Bearer \(token)" }
                if json != nil { headers[.contentType] = "application/json" }
                if form != nil { headers[.contentType] = "application/x-www-form-urlencoded" }
                let body = (json ?? form).map { ByteBuffer(string: $0) }
                let answer = try await client.execute(uri: uri, method: method, headers: headers, body: body) { response in
                    LiveAnswer(
                        method: method, uri: uri, status: response.status, headers: response.headers,
                        body: Array(response.body.readableBytesView))
                }
                answers.append(answer)
                return answer
            }
            func expect(_ answer: LiveAnswer, _ status: HTTPResponse.Status, line: UInt = #line) {
                XCTAssertEqual(answer.status, status, "\(answer.method) \(answer.uri)", line: line)
            }

            // Key publication and operations.
            expect(try await call(.get, "/healthz"), .ok)
            expect(try await call(.get, "/livez"), .ok)
            expect(try await call(.get, "/readyz"), .ok)
            let jwks = try await call(.get, "/.well-known/jwks.json")
            expect(jwks, .ok)
            let etag = try XCTUnwrap(jwks.headers[.eTag])
            expect(try await call(.get, "/.well-known/jwks.json", headers: [.ifNoneMatch: etag]), .notModified)
            expect(try await call(.get, "/auth/pem"), .ok)
            let kid = try XCTUnwrap(jwks.json?["keys"]?.array?.first?["kid"]?.string)
            expect(try await call(.get, "/auth/pem?kid=\(kid)"), .ok)
            expect(try await call(.get, "/auth/pem?kid=unknown"), .notFound)
            expect(try await call(.get, "/.well-known/openid-configuration"), .ok)
            expect(try await call(.get, "/openapi.yaml"), .ok)
            expect(try await call(.get, "/metrics"), .notFound)

            // Generation 1.
            let password = ServerHarness.password
            let login = try await call(
                .post, "/api/org_token/", json: #"{"username":"alice","password":"\#(password)","org_name":"org1"}"#)
            expect(login, .ok)
            let access = try XCTUnwrap(login.json?["access"]?.string)
            let refresh = try XCTUnwrap(login.json?["refresh"]?.string)
            expect(
                try await call(.post, "/api/org_token/", json: #"{"username":"alice","password":"\#(password)","org_name":"org2"}"#),
                .forbidden)
            expect(try await call(.post, "/api/org_token/", json: #"{"username":"alice"}"#), .badRequest)
            expect(try await call(.post, "/api/org_token", json: "[1]"), .badRequest)
            let oversized = #"{"username":"alice","padding":""# + String(repeating: "x", count: 70_000) + #""}"#
            expect(try await call(.post, "/api/org_token/", json: oversized), .contentTooLarge)
            expect(try await call(.get, "/api/membership_status/org1/", token: access), .ok)
            expect(try await call(.get, "/api/membership_status/org1/"), .unauthorized)
            // The scaling calls, without a provisioner (ScalingHTTPTests has the forwarded answers).
            expect(try await call(.get, "/api/org_num_nodes/org1/", token: access), .notImplemented)
            expect(try await call(.put, "/api/desired_org_num_nodes/org1/3/", token: access), .notImplemented)
            expect(try await call(.post, "/api/desired_org_num_nodes_ttl/org1/3/15", token: access), .notImplemented)
            expect(try await call(.get, "/api/org_ip_adr/org1/"), .unauthorized)
            expect(try await call(.get, "/api/org_ip_adr/org2/", token: access), .forbidden)
            expect(try await call(.put, "/api/desired_org_num_nodes/org1/-1/", token: access), .badRequest)
            let refreshed = try await call(.post, "/api/org_token/refresh/", json: #"{"refresh":"\#(refresh)"}"#)
            expect(refreshed, .ok)
            expect(try await call(.post, "/api/org_token/refresh/", json: #"{"refresh":"unknown"}"#), .unauthorized)
            let successor = try XCTUnwrap(refreshed.json?["refresh"]?.string)
            expect(try await call(.post, "/api/token/blacklist/", json: #"{"refresh":"unknown"}"#), .unauthorized)

            // OAuth.
            let second = try await call(
                .post, "/api/org_token/", json: #"{"username":"alice","password":"\#(password)","org_name":"org1"}"#)
            let secondRefresh = try XCTUnwrap(second.json?["refresh"]?.string)
            let exchanged = try await call(.post, "/oauth/token", form: "grant_type=refresh_token&refresh_token=\(secondRefresh)")
            expect(exchanged, .ok)
            let oauthRefresh = try XCTUnwrap(exchanged.json?["refresh_token"]?.string)
            expect(try await call(.post, "/oauth/token", form: "grant_type=password&username=alice"), .badRequest)
            expect(try await call(.post, "/oauth/token", json: "{}"), .badRequest)
            let exchange = "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=ghp_x"
                + "&subject_token_type=urn:ietf:params:oauth:token-type:access_token"
            expect(try await call(.post, "/oauth/token", form: exchange), .badRequest)
            expect(try await call(.post, "/oauth/token", form: exchange + "&audience=org1"), .badRequest)

            // Broker sessions; introspection needs one.
            let root = try await call(.post, "/api/session", json: #"{"username":"root","password":"\#(password)"}"#)
            expect(root, .ok)
            let admin = try XCTUnwrap(root.json?["token"]?.string)
            let bobSession = try await call(.post, "/api/session/", json: #"{"username":"bob","password":"\#(password)"}"#)
            let bob = try XCTUnwrap(bobSession.json?["token"]?.string)
            expect(try await call(.get, "/api/session", token: admin), .ok)
            expect(try await call(.get, "/api/session", token: "not.a.token"), .unauthorized)
            expect(try await call(.post, "/api/session/github", json: #"{"access_token":"gho_x"}"#), .unauthorized)
            for token in [access, oauthRefresh, admin, "unknown"] {
                expect(try await call(.post, "/oauth/introspect", token: admin, form: "token=\(token)"), .ok)
            }
            expect(try await call(.post, "/oauth/introspect", form: "token=\(access)"), .unauthorized)
            expect(try await call(.post, "/oauth/introspect", token: bob, form: "token=\(access)"), .forbidden)
            expect(try await call(.post, "/oauth/introspect", token: admin, form: ""), .badRequest)
            expect(try await call(.post, "/oauth/revoke", form: "token=\(oauthRefresh)&token_type_hint=refresh_token"), .ok)
            expect(try await call(.post, "/oauth/revoke", form: "token=x&token_type_hint=id_token"), .badRequest)
            expect(try await call(.post, "/api/token/blacklist/", json: #"{"refresh":"\#(successor)"}"#), .ok)

            // GitHub logins, against a GitHub that refuses every token.
            expect(try await call(.post, "/auth/github/pat", json: #"{"pat":"ghp_x"}"#), .unauthorized)
            expect(try await call(.post, "/auth/github/pat", json: "{}"), .badRequest)
            expect(try await call(.post, "/auth/github/device"), .ok)
            expect(try await call(.post, "/auth/github/device/poll", json: #"{"device_code":"pending"}"#), .accepted)
            expect(try await call(.post, "/auth/github/device/poll", json: #"{"device_code":"x"}"#), .badRequest)
            expect(try await call(.post, "/auth/github/device/poll", json: "{}"), .badRequest)
            expect(try await call(.get, "/auth/refresh"), .unauthorized)
            expect(try await call(.get, "/auth/refresh", token: access), .unauthorized)
            expect(
                try await call(.post, "/api/org_token_github/", json: #"{"org_name":"org1","access_token":"ghp_x"}"#),
                .unauthorized)

            // Membership.
            expect(try await call(.post, "/api/orgs/org2/membership-requests", token: bob), .created)
            expect(try await call(.post, "/api/orgs/org2/membership-requests", token: bob), .conflict)
            expect(try await call(.post, "/api/orgs/nowhere/membership-requests", token: bob), .notFound)
            expect(try await call(.get, "/api/orgs/org2/membership-requests", token: bob), .forbidden)
            expect(try await call(.get, "/api/orgs/org2/membership-requests", token: admin), .ok)
            expect(
                try await call(.post, "/api/orgs/org2/membership-requests/bob/approve", token: admin, json: #"{"role":"chief"}"#),
                .badRequest)
            expect(try await call(.post, "/api/orgs/org2/membership-requests/bob/approve", token: admin), .ok)
            expect(try await call(.post, "/api/orgs/org2/membership-requests/bob/deny", token: admin), .notFound)
            expect(try await call(.get, "/api/orgs/org2/members", token: admin), .ok)
            expect(try await call(.put, "/api/orgs/org2/members/bob", token: admin, json: #"{"role":"owner"}"#), .ok)
            expect(try await call(.get, "/api/orgs/org2/policy", token: bob), .ok)
            expect(
                try await call(.put, "/api/orgs/org2/policy", token: bob, json: #"{"access_lifetime":600,"audiences":["org2","cluster-b"]}"#),
                .ok)
            expect(try await call(.put, "/api/orgs/org2/policy", token: bob, json: #"{"access_lifetime":5}"#), .badRequest)
            expect(try await call(.put, "/api/orgs/org1/policy", token: admin, json: #"{"audiences":["cluster-b"]}"#), .conflict)
            expect(try await call(.delete, "/api/orgs/org2/members/bob", token: admin), .noContent)

            // Admin: users, sessions, organizations, keys.
            expect(try await call(.get, "/api/admin/users?limit=2", token: admin), .ok)
            expect(try await call(.get, "/api/admin/users?limit=0", token: admin), .badRequest)
            expect(try await call(.get, "/api/admin/users", token: bob), .forbidden)
            expect(try await call(.post, "/api/admin/users", token: admin, json: #"{"username":"carol","global_role":"introspector"}"#), .created)
            expect(try await call(.post, "/api/admin/users", token: admin, json: #"{"username":"carol"}"#), .conflict)
            expect(try await call(.post, "/api/admin/users", token: admin, json: #"{"username":"with space"}"#), .badRequest)
            expect(try await call(.get, "/api/admin/users/carol", token: admin), .ok)
            expect(try await call(.get, "/api/admin/users/nobody", token: admin), .notFound)
            expect(try await call(.post, "/api/admin/users/carol/disable", token: admin), .ok)
            expect(try await call(.post, "/api/admin/users/carol/enable", token: admin), .ok)
            expect(try await call(.post, "/api/admin/users/root/disable", token: admin), .conflict)
            expect(try await call(.post, "/api/admin/users/carol/password", token: admin, json: #"{"password":"short"}"#), .badRequest)
            expect(try await call(.post, "/api/admin/users/carol/password", token: admin, json: #"{"password":"\#(password)"}"#), .noContent)
            expect(try await call(.put, "/api/admin/users/carol/role", token: admin, json: #"{"global_role":null}"#), .ok)
            let sessions = try await call(.get, "/api/admin/users/alice/sessions", token: admin)
            expect(sessions, .ok)
            let session = try XCTUnwrap(sessions.json?["sessions"]?.array?.first?["id"]?.string)
            expect(try await call(.delete, "/api/admin/users/alice/sessions/\(session)", token: admin), .noContent)
            expect(try await call(.delete, "/api/admin/users/alice/sessions/unknown", token: admin), .notFound)
            expect(try await call(.delete, "/api/admin/users/alice/sessions", token: admin), .ok)
            expect(try await call(.delete, "/api/admin/users/carol", token: admin), .noContent)
            expect(try await call(.get, "/api/admin/orgs", token: admin), .ok)
            expect(try await call(.post, "/api/admin/orgs", token: admin, json: #"{"name":"org3","cluster_name":null}"#), .created)
            expect(try await call(.post, "/api/admin/orgs", token: admin, json: #"{"name":".hidden"}"#), .badRequest)
            expect(try await call(.delete, "/api/admin/orgs/org3", token: admin), .noContent)
            expect(try await call(.put, "/api/admin/service-audiences/monitor", token: admin), .noContent)
            expect(try await call(.put, "/api/admin/service-audiences/org1", token: admin), .conflict)
            expect(try await call(.put, "/api/admin/service-audiences/.hidden", token: admin), .badRequest)
            expect(try await call(.get, "/api/admin/audience-names", token: admin), .ok)
            expect(try await call(.delete, "/api/admin/audience-names/org3", token: admin), .noContent)
            expect(try await call(.delete, "/api/admin/audience-names/org3", token: admin), .notFound)
            expect(try await call(.delete, "/api/admin/audience-names/org1", token: admin), .conflict)
            expect(try await call(.delete, "/api/admin/service-audiences/monitor", token: admin), .noContent)
            expect(try await call(.delete, "/api/admin/service-audiences/monitor", token: admin), .notFound)
            expect(try await call(.get, "/api/admin/keys", token: admin), .ok)
            expect(try await call(.post, "/api/admin/keys/rotate", token: admin), .conflict)
            expect(try await call(.post, "/api/admin/keys/rotate", token: admin, json: #"{"force":"yes"}"#), .badRequest)
            expect(try await call(.post, "/api/admin/keys/unknown/retire", token: admin), .notFound)

            // Brute force: the sixth failure for one username and IP is not even evaluated.
            for _ in 1...5 {
                expect(try await call(.post, "/api/session", json: #"{"username":"bob","password":"wrong password!"}"#), .unauthorized)
            }
            expect(try await call(.post, "/api/session", json: #"{"username":"bob","password":"wrong password!"}"#), .tooManyRequests)
            expect(
                try await call(.post, "/api/org_token/", json: #"{"username":"bob","password":"wrong password!","org_name":"org1"}"#),
                .tooManyRequests)

            let violations = answers.flatMap(contract.violations(of:))
            XCTAssertEqual(violations, [], violations.joined(separator: "\n"))
            let statuses = Set(answers.map(\.status.code))
            XCTAssertEqual(statuses, [200, 201, 202, 204, 304, 400, 401, 403, 404, 409, 413, 429, 501])
        }
    }

    /// Path parameters are percent-decoded (RFC 3986): `b%6Fb` is `bob`, and an account whose
    /// name is not ASCII can be addressed at all.
    func testPathParametersArePercentDecoded() async throws {
        try await harness.services.accounts.addUser("josé", password: ServerHarness.password, by: .operator)
        try await harness.withClient { client in
            let admin = try await client.sessionToken("root")
            let bob = try await client.api(.get, "/api/admin/users/b%6Fb", token: admin)
            XCTAssertEqual(bob.status, .ok)
            XCTAssertEqual(bob.body["username"] as? String, "bob")
            let jose = try await client.api(.get, "/api/admin/users/jos%C3%A9", token: admin)
            XCTAssertEqual(jose.status, .ok)
            XCTAssertEqual(jose.body["username"] as? String, "josé")
            let malformed = try await client.api(.get, "/api/admin/users/%FF", token: admin)
            XCTAssertEqual(malformed.status, .badRequest)
            XCTAssertEqual(malformed.error, "invalid_request")
            let slash = try await client.api(.get, "/api/admin/users/a%2Fb", token: admin)
            XCTAssertEqual(slash.status, .notFound, "a decoded slash stays inside the parameter")
        }
    }

    /// A known path with another method is 405 with `Allow` (RFC 9110 15.5.6), as the error
    /// catalogue says; an unknown path stays 404. Both in the shape of ErrorBody.
    func testAnotherMethodOnAKnownPathIsMethodNotAllowed() async throws {
        let contract = self.contract!
        try await harness.withClient { client in
            for (method, path, allow) in [
                (HTTPRequest.Method.trace, "/healthz", "GET, HEAD"), (.head, "/api/org_token/", "POST"), (.delete, "/api/org_token/", "POST"),
                (.get, "/api/session/github", "POST"), (.patch, "/api/admin/users/bob", "DELETE, GET, HEAD"),
                (.options, "/api/session", "GET, HEAD, POST"), (.get, "/api/orgs/org1/members/bob", "DELETE, PUT"),
            ] {
                let answer = try await client.api(method, path)
                XCTAssertEqual(answer.status, .methodNotAllowed, "\(method) \(path)")
                XCTAssertEqual(answer.headers[.allow], allow, "\(method) \(path)")
                guard method != .head else { continue }  // HEAD answers carry no body
                XCTAssertEqual(answer.error, "method_not_allowed")
                let body = try JSONSerialization.data(withJSONObject: answer.body)
                let violations = try contract.validate(
                    try JSONParser.parse(Array(body)), .object(["$ref": .string("#/components/schemas/ErrorBody")]), at: "body")
                XCTAssertEqual(violations, [])
            }
            for (method, path) in [(HTTPRequest.Method.get, "/nowhere"), (.get, "/api/admin/users/bob/elsewhere")] {
                let answer = try await client.api(method, path)
                XCTAssertEqual(answer.status, .notFound, "\(method) \(path)")
                XCTAssertEqual(answer.error, "not_found")
            }
        }
    }

    /// Every 401 says how to authenticate again, generation-2 answers included (RFC 9110 15.5.2).
    func testGeneration2UnauthorizedAnswersCarryWWWAuthenticate() async throws {
        try await harness.withClient { client in
            let missing = try await client.api(.get, "/auth/refresh")
            XCTAssertEqual(missing.status, .unauthorized)
            XCTAssertEqual(missing.body["status"] as? String, "error")
            XCTAssertEqual(missing.headers[.wwwAuthenticate], #"Bearer realm="broker""#)
            let rejected = try await client.api(.get, "/auth/refresh", token: "a.b.c")
            XCTAssertEqual(rejected.status, .unauthorized)
            XCTAssertEqual(
                rejected.headers[.wwwAuthenticate],
                #"Bearer realm="broker", error="invalid_token", error_description="malformed token: token header is not base64url""#)
        }
    }
}

/// A GitHub that rejects every token and keeps the device code `pending` pending.
struct RefusingGitHub: GitHubAPI {
    func user(token: String) async throws(GitHubError) -> GitHubUser { throw .unauthorized }

    func organizationMembership(token: String, organization: String, login: String) async throws(GitHubError)
        -> GitHubOrganizationMembership?
    { throw .unauthorized }

    func teams(token: String) async throws(GitHubError) -> [GitHubTeam] { throw .unauthorized }

    func requestDeviceCode(scope: String) async throws(GitHubError) -> GitHubDeviceCode {
        GitHubDeviceCode(
            deviceCode: "pending", userCode: "WDJB-MJHT", verificationURI: "https://github.com/login/device",
            verificationURIComplete: nil, expiresIn: 900, interval: 5)
    }

    func pollDeviceAuthorization(deviceCode: String) async throws(GitHubError) -> GitHubDevicePoll {
        deviceCode == "pending" ? .pending(interval: 5) : .failed(error: "incorrect_device_code")
    }
}

extension HTTPFields {
    fileprivate func merging(_ other: HTTPFields) -> HTTPFields {
        var merged = self
        for field in other { merged[field.name] = field.value }
        return merged
    }
}
