import BrokerCore
import FakeGitHub
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// What OAuth and JOSE libraries expect (issue 15), over HTTP: the RFC 8414 metadata, RFC 9068's
/// `client_id` and the client binding of refresh tokens, and the RFC 6750 challenge of every 401
/// and 403 of every route family. `StandardsInteropTests` runs third-party libraries against the
/// same rules.
final class StandardsHTTPTests: XCTestCase {
    var github: FakeGitHub!
    var harness: ServerHarness!

    override func setUp() async throws {
        (github, harness) = try await ServerHarness.withFakeGitHub { configuration in
            configuration.slideRuleClientID = try! ClientID(validating: "sliderule-test")
        }
        github.addUser(login: "carol", id: 30, token: "ghp_carol", organizations: ["SlideRuleEarth": .member])
    }

    override func tearDown() async throws {
        try await harness.shutdown()
        await github.stop()
    }

    static let exchange =
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=ghp_carol"
        + "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"

    // MARK: - RFC 8414

    func testMetadataAdvertisesExactlyWhatExists() async throws {
        try await harness.withClient { client in
            let (status, metadata) = try await client.getJSON("/.well-known/oauth-authorization-server")
            XCTAssertEqual(status, .ok)
            let issuer = "http://127.0.0.1:8080"
            XCTAssertEqual(metadata["issuer"] as? String, issuer)
            XCTAssertEqual(metadata["token_endpoint"] as? String, issuer + "/oauth/token")
            XCTAssertEqual(metadata["jwks_uri"] as? String, issuer + "/.well-known/jwks.json")
            XCTAssertEqual(metadata["revocation_endpoint"] as? String, issuer + "/oauth/revoke")
            XCTAssertEqual(metadata["introspection_endpoint"] as? String, issuer + "/oauth/introspect")
            XCTAssertEqual(
                metadata["grant_types_supported"] as? [String],
                ["refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"])
            XCTAssertEqual(metadata["response_types_supported"] as? [String], [])
            XCTAssertEqual(metadata["token_endpoint_auth_methods_supported"] as? [String], ["none"])
            XCTAssertEqual(metadata["revocation_endpoint_auth_methods_supported"] as? [String], ["none"])
            XCTAssertEqual(metadata["introspection_endpoint_auth_methods_supported"] as? [String], ["Bearer"])
            for absent in ["authorization_endpoint", "code_challenge_methods_supported", "scopes_supported", "claims_supported"] {
                XCTAssertNil(metadata[absent], absent)
            }
            XCTAssertTrue(metadata.keys.allSatisfy { !$0.hasPrefix("id_token") })

            // The OpenID document lists the same endpoints and no ID token fields.
            let (_, openID) = try await client.getJSON("/.well-known/openid-configuration")
            for (key, value) in metadata {
                XCTAssertEqual(openID[key] as? NSObject, value as? NSObject, key)
            }
            XCTAssertEqual(openID["subject_types_supported"] as? [String], ["public"])
            XCTAssertEqual(Set(openID.keys).subtracting(metadata.keys), ["subject_types_supported"])
        }
    }

    /// RFC 8414 section 3.1: an issuer with a path has its document under the well-known segment.
    func testAnIssuerWithAPathHasItsDocumentAfterTheWellKnownSegment() async throws {
        let harness = try await ServerHarness.make { $0.issuer = "https://login.example.org/broker" }
        do {
            try await documentsUnderThePath(harness)
        } catch {
            try await harness.shutdown()
            throw error
        }
        try await harness.shutdown()
    }

    private func documentsUnderThePath(_ harness: ServerHarness) async throws {
        try await harness.withClient { client in
            let (status, metadata) = try await client.getJSON("/.well-known/oauth-authorization-server/broker")
            XCTAssertEqual(status, .ok)
            XCTAssertEqual(metadata["issuer"] as? String, "https://login.example.org/broker")
            XCTAssertEqual(metadata["token_endpoint"] as? String, "https://login.example.org/broker/oauth/token")
            let (plain, _) = try await client.getJSON("/.well-known/oauth-authorization-server")
            XCTAssertEqual(plain, .ok)
        }
    }

    // MARK: - RFC 9068 client_id

    func testEveryTokenNamesItsClient() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let verifier = harness.services.verifier
            // The two SlideRule protocols: the configured id.
            let generation1 = try await client.orgTokens("alice", "org1")
            XCTAssertEqual(try verifier.verify(generation1.access, audience: "org1").clientID, "sliderule-test")
            let (_, pat) = try await client.postJSON("/auth/github/pat", #"{"pat":"ghp_carol"}"#)
            let generation2 = try XCTUnwrap(pat["token"] as? String)
            XCTAssertEqual(try verifier.verify(generation2, audience: "sliderule").clientID, "sliderule-test")
            XCTAssertEqual((pat["metadata"] as? [String: Any])?["client_id"] as? String, "sliderule-test")
            // The broker's own sessions.
            let session = try await client.sessionToken("alice")
            XCTAssertEqual(try verifier.verify(session, audience: harness.services.configuration.issuer).clientID, "broker")
            // /auth/refresh keeps the session's client.
            harness.clock.advance(by: 60)
            let renewed = try await client.api(.get, "/auth/refresh", token: generation2)
            XCTAssertEqual(renewed.status, .ok)
            XCTAssertEqual(
                try verifier.verify(try XCTUnwrap(renewed.body["token"] as? String), audience: "sliderule").clientID, "sliderule-test")
            // Token exchange: the caller's client_id, also in the renewals of its refresh token.
            let exchanged = try await client.form("/oauth/token", Self.exchange + "&audience=sliderule&client_id=notebook")
            XCTAssertEqual(exchanged.status, .ok, "\(exchanged.body)")
            XCTAssertEqual(
                try verifier.verify(try XCTUnwrap(exchanged.body["access_token"] as? String), audience: "sliderule").clientID, "notebook")
            let refresh = try XCTUnwrap(exchanged.body["refresh_token"] as? String)
            let viaGeneration1 = try await client.refresh(refresh)
            XCTAssertEqual(viaGeneration1.status, .ok)
            XCTAssertEqual(
                try verifier.verify(try XCTUnwrap(viaGeneration1.body["access"] as? String), audience: "sliderule").clientID,
                "notebook")
            let exchangedGeneration2 = try await client.form("/oauth/token", Self.exchange + "&client_id=notebook")
            XCTAssertEqual(
                try verifier.verify(try XCTUnwrap(exchangedGeneration2.body["access_token"] as? String), audience: "sliderule")
                    .clientID, "notebook")
        }
    }

    /// RFC 7662's `client_id`: introspection names the client of an access token and of a
    /// refresh token's session.
    func testIntrospectionNamesTheClient() async throws {
        let harness = self.harness!
        let fixtures = AccountAdministration(store: harness.services.store, pool: harness.services.passwords, clock: harness.clock)
        try await fixtures.addUser("root", password: ServerHarness.password, globalRole: .admin, by: .operator)
        try await harness.withClient { client in
            let admin = try await client.sessionToken("root")
            let exchanged = try await client.form("/oauth/token", Self.exchange + "&audience=sliderule&client_id=notebook")
            for name in ["access_token", "refresh_token"] {
                let token = try XCTUnwrap(exchanged.body[name] as? String)
                let answer = try await client.form("/oauth/introspect", "token=\(token)", token: admin)
                XCTAssertEqual(answer.body["active"] as? Bool, true, name)
                XCTAssertEqual(answer.body["client_id"] as? String, "notebook", name)
            }
        }
    }

    /// RFC 6749 section 6: a refresh token renews only for the client it was issued to; a
    /// refusal leaves it unused, so its own client still renews it.
    func testARefreshTokenRenewsOnlyForItsClient() async throws {
        try await harness.withClient { client in
            let bundle = try await client.orgTokens("alice", "org1")
            var answer = try await client.form("/oauth/token", "grant_type=refresh_token&client_id=notebook&refresh_token=\(bundle.refresh)")
            XCTAssertEqual(answer.status, .badRequest)
            XCTAssertEqual(answer.error, "invalid_grant")
            XCTAssertEqual(answer.body["error_description"] as? String, "this refresh token was issued to another client")
            answer = try await client.form("/oauth/token", "grant_type=refresh_token&client_id=sliderule-test&refresh_token=\(bundle.refresh)")
            XCTAssertEqual(answer.status, .ok, "\(answer.body)")
            // Without a client_id, the token's own client.
            let next = try XCTUnwrap(answer.body["refresh_token"] as? String)
            answer = try await client.form("/oauth/token", "grant_type=refresh_token&refresh_token=\(next)")
            XCTAssertEqual(answer.status, .ok)
        }
    }

    /// Libraries configured for `client_secret_basic` send the id as a Basic user with an empty
    /// password; a secret is refused, since no client has one.
    func testTheClientMayNameItselfWithBasicAndNeverWithASecret() async throws {
        try await harness.withClient { client in
            func basic(_ credentials: String) -> HTTPFields {
                [.authorization: "Basic " + Data(credentials.utf8).base64EncodedString(),
                 .contentType: "application/x-www-form-urlencoded"]
            }
            let bundle = try await client.orgTokens("alice", "org1")
            var answer = try await client.execute(
                uri: "/oauth/token", method: .post, headers: basic("sliderule-test:"),
                body: ByteBuffer(string: "grant_type=refresh_token&refresh_token=\(bundle.refresh)"), testCallback: APIAnswer.init)
            XCTAssertEqual(answer.status, .ok, "\(answer.body)")
            let next = try XCTUnwrap(answer.body["refresh_token"] as? String)

            answer = try await client.execute(
                uri: "/oauth/token", method: .post, headers: basic("sliderule-test:s3cret"),
                body: ByteBuffer(string: "grant_type=refresh_token&refresh_token=\(next)"), testCallback: APIAnswer.init)
            XCTAssertEqual(answer.status, .unauthorized)
            XCTAssertEqual(answer.error, "invalid_client")
            XCTAssertEqual(answer.headers[.wwwAuthenticate], #"Basic realm="broker""#)

            answer = try await client.execute(
                uri: "/oauth/token", method: .post, headers: basic("other:"),
                body: ByteBuffer(string: "grant_type=refresh_token&client_id=sliderule-test&refresh_token=\(next)"),
                testCallback: APIAnswer.init)
            XCTAssertEqual(answer.status, .badRequest)
            XCTAssertEqual(answer.error, "invalid_request")

            // None of these used the token.
            answer = try await client.form("/oauth/token", "grant_type=refresh_token&refresh_token=\(next)")
            XCTAssertEqual(answer.status, .ok)
        }
    }

    func testHostileClientIDsAreRefused() async throws {
        try await harness.withClient { client in
            let bundle = try await client.orgTokens("alice", "org1")
            let long = String(repeating: "a", count: ClientID.maximumLength + 1)
            for hostile in ["a%20b", "tab%09", "%C3%A9t%C3%A9", long, "nul%00", "%7F"] {
                let answer = try await client.form(
                    "/oauth/token", "grant_type=refresh_token&client_id=\(hostile)&refresh_token=\(bundle.refresh)")
                XCTAssertEqual(answer.status, .badRequest, hostile)
                XCTAssertEqual(answer.error, "invalid_request", hostile)
                XCTAssertFalse((answer.body["error_description"] as? String ?? "").contains(bundle.refresh))
            }
            let answer = try await client.refresh(bundle.refresh)
            XCTAssertEqual(answer.status, .ok, "the refusals left the token unused")
        }
    }

    // MARK: - RFC 6750 and RFC 9110 challenges

    /// Every 401 and 403 of every route family says how to authenticate: the bare challenge when
    /// the request presented nothing, `invalid_token` (401) or `insufficient_scope` (403) with
    /// a description when it did. Bodies keep each family's shape.
    func testEveryRefusalCarriesItsChallenge() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let bare = #"Bearer realm="broker""#
            func invalid(_ description: String) -> String {
                #"Bearer realm="broker", error="invalid_token", error_description="\#(description)""#
            }
            func scope(_ description: String) -> String {
                #"Bearer realm="broker", error="insufficient_scope", error_description="\#(description)""#
            }
            let alice = try await client.orgTokens("alice", "org1").access
            let session = try await client.sessionToken("alice")
            let cases: [(String, APIAnswer, HTTPResponse.Status, String)] = [
                // Generation 1: bodies stay {"error","detail"}.
                (
                    "generation-1 login, wrong password",
                    try await client.api(
                        .post, "/api/org_token/", json: #"{"username":"alice","password":"nope nope nope","org_name":"org1"}"#),
                    .unauthorized, bare
                ),
                (
                    "generation-1 login, not a member",
                    try await client.api(
                        .post, "/api/org_token/",
                        json: #"{"username":"bob","password":"\#(ServerHarness.password)","org_name":"org1"}"#),
                    .forbidden, bare
                ),
                ("membership status, no token", try await client.api(.get, "/api/membership_status/org1/"), .unauthorized, bare),
                (
                    "membership status, bogus token", try await client.api(.get, "/api/membership_status/org1/", token: "x.y.z"),
                    .unauthorized, invalid("malformed token: token header is not base64url")
                ),
                // Generation 2.
                (
                    "PAT login, revoked PAT", try await client.api(.post, "/auth/github/pat", json: #"{"pat":"ghp_unknown"}"#),
                    .unauthorized, bare
                ),
                (
                    "generation-2 renewal of an organization token", try await client.api(.get, "/auth/refresh", token: alice),
                    .unauthorized, invalid("only generation-2 tokens from a GitHub login can be renewed here")
                ),
                // The admin and membership API.
                (
                    "admin route, member's session", try await client.api(.get, "/api/admin/users", token: session),
                    .forbidden, scope("only a broker admin may list accounts")
                ),
                // OAuth.
                (
                    "introspection, organization token", try await client.form("/oauth/introspect", "token=x", token: alice),
                    .unauthorized, invalid("not a valid broker session token: audience (aud) does not include the expected audience")
                ),
                (
                    "introspection, member's session", try await client.form("/oauth/introspect", "token=x", token: session),
                    .forbidden, scope("introspection needs the global role admin or introspector")
                ),
            ]
            for (name, answer, status, challenge) in cases {
                XCTAssertEqual(answer.status, status, "\(name): \(answer.body)")
                XCTAssertEqual(answer.headers[.wwwAuthenticate], challenge, name)
            }
        }
    }

    /// `error_description` may hold neither a quote nor a backslash nor anything outside
    /// printable ASCII (RFC 6750 section 3): whatever a request put in the text is replaced.
    func testAChallengeDescriptionCannotBreakOutOfItsQuotes() async throws {
        try await harness.withClient { client in
            let session = try await client.sessionToken("alice")
            let answer = try await client.api(.get, "/api/orgs/or%22g%5C%C3%A9/members", token: session)
            XCTAssertTrue([.forbidden, .notFound].contains(answer.status), "\(answer.status)")
            if let challenge = answer.headers[.wwwAuthenticate] {
                let description = try XCTUnwrap(challenge.components(separatedBy: #"error_description=""#).last?.dropLast())
                XCTAssertFalse(description.contains("\"") || description.contains("\\"), challenge)
                XCTAssertTrue(description.unicodeScalars.allSatisfy { (0x20...0x7E).contains($0.value) }, challenge)
            }
        }
    }
}
