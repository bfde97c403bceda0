import BrokerCore
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

/// `POST /oauth/token`: form-encoded in, RFC 6749 JSON out.
final class OAuthTokenHTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        harness = try await ServerHarness.make()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    static func form(_ client: any TestClientProtocol, _ body: String, contentType: String = "application/x-www-form-urlencoded")
        async throws -> (HTTPResponse.Status, [String: Any])
    {
        try await client.execute(
            uri: "/oauth/token", method: .post, headers: [.contentType: contentType], body: ByteBuffer(string: body)
        ) { response in
            (response.status, try TestClientProtocolHelpers.object(response))
        }
    }

    func testRefreshTokenGrantRotatesLikeGeneration1() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/api/org_token/", Generation1HTTPTests.login)
            let first = try XCTUnwrap(login["refresh"] as? String)
            var (status, body) = try await Self.form(client, "grant_type=refresh_token&refresh_token=\(first)")
            XCTAssertEqual(status, .ok)
            XCTAssertEqual(body["token_type"] as? String, "Bearer")
            XCTAssertEqual(body["expires_in"] as? Int, 3600)
            let access = try XCTUnwrap(body["access_token"] as? String)
            XCTAssertNoThrow(try harness.services.verifier.verify(access, audience: "org1"))
            let second = try XCTUnwrap(body["refresh_token"] as? String)
            XCTAssertNotEqual(second, first)
            // Reuse after the grace window: invalid_grant, and the family is gone.
            harness.clock.advance(by: 5)
            (status, body) = try await Self.form(client, "grant_type=refresh_token&refresh_token=\(first)")
            XCTAssertEqual(status, .badRequest)
            XCTAssertEqual(body["error"] as? String, "invalid_grant")
            XCTAssertNotNil(body["error_description"] as? String)
            (status, body) = try await Self.form(client, "grant_type=refresh_token&refresh_token=\(second)")
            XCTAssertEqual(body["error"] as? String, "invalid_grant")
        }
    }

    func testLostMembershipIsAccessDenied() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/api/org_token/", Generation1HTTPTests.login)
            let refresh = try XCTUnwrap(login["refresh"] as? String)
            try await harness.services.accounts.removeMember(organization: "org1", username: "alice", by: .operator)
            let (status, body) = try await Self.form(client, "grant_type=refresh_token&refresh_token=\(refresh)")
            XCTAssertEqual(status, .forbidden)
            XCTAssertEqual(body["error"] as? String, "access_denied")
        }
    }

    func testMalformedRequestsAndUnsupportedGrants() async throws {
        try await harness.withClient { client in
            let cases: [(String, String, String, HTTPResponse.Status)] = [
                ("grant_type=password&username=alice&password=x", "application/x-www-form-urlencoded", "unsupported_grant_type", .badRequest),
                ("grant_type=client_credentials", "application/x-www-form-urlencoded", "unsupported_grant_type", .badRequest),
                ("refresh_token=abc", "application/x-www-form-urlencoded", "invalid_request", .badRequest),
                ("grant_type=refresh_token&grant_type=refresh_token&refresh_token=a", "application/x-www-form-urlencoded", "invalid_request", .badRequest),
                ("grant_type=refresh_token&refresh_token=%ZZ", "application/x-www-form-urlencoded", "invalid_request", .badRequest),
                ("grant_type=refresh_token&refresh_token=a%00b", "application/x-www-form-urlencoded", "invalid_request", .badRequest),
                (#"{"grant_type":"refresh_token"}"#, "application/json", "invalid_request", .badRequest),
                ("grant_type=refresh_token&refresh_token=unknown", "application/x-www-form-urlencoded", "invalid_grant", .badRequest),
                ("grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=x&subject_token_type=urn:ietf:params:oauth:token-type:id_token", "application/x-www-form-urlencoded", "invalid_request", .badRequest),
            ]
            for (body, contentType, code, status) in cases {
                let (gotStatus, answer) = try await Self.form(client, body, contentType: contentType)
                XCTAssertEqual(gotStatus, status, body)
                XCTAssertEqual(answer["error"] as? String, code, body)
            }
            let huge = "grant_type=refresh_token&refresh_token=" + String(repeating: "a", count: 70_000)
            let (status, answer) = try await Self.form(client, huge)
            XCTAssertEqual(status, .contentTooLarge)
            XCTAssertEqual(answer["error"] as? String, "invalid_request")
        }
    }

    /// Without GitHub logins token exchange answers 503, so it is not advertised
    /// (`StandardsHTTPTests` checks the documents with GitHub enabled).
    func testDiscoveryAdvertisesTheTokenEndpoint() async throws {
        try await harness.withClient { client in
            let (_, discovery) = try await client.getJSON("/.well-known/openid-configuration")
            XCTAssertEqual(discovery["token_endpoint"] as? String, "http://127.0.0.1:8080/oauth/token")
            XCTAssertEqual(discovery["grant_types_supported"] as? [String], ["refresh_token"])
        }
    }
}

/// Shared by the tests that read JSON answers.
enum TestClientProtocolHelpers {
    static func object(_ response: TestResponse) throws -> [String: Any] {
        let data = Data(response.body.readableBytesView)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw NotAnObject(text: String(decoding: data, as: UTF8.self))
        }
        return object
    }
}
