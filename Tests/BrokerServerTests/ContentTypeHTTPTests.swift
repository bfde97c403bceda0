import BrokerCore
import BrokerServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

/// JSON routes take only bodies declared `application/json`: a page on another site can post
/// `text/plain`, forms and `multipart/form-data` without a CORS preflight, never
/// `application/json`. What the SlideRule clients and OAuth clients send keeps working.
final class ContentTypeHTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        harness = try await ServerHarness.withAdmin()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    static let login = #"{"username":"alice","password":"correct horse battery staple","org_name":"org1"}"#

    /// What a cross-site form or `fetch` without preflight sends, and other types that are not JSON.
    static let refused: [String?] = [
        nil, "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x", "application/json; charset=iso-8859-1", "application/jsonp",
        "application/vnd.api+json", "text/json", "",
    ]
    static let accepted = ["application/json", "Application/JSON; charset=UTF-8", #"application/json;charset="utf-8""#, "application/json; foo=bar"]

    static func post(_ client: some TestClientProtocol, _ path: String, _ body: String, contentType: String?, token: String? = nil) async throws -> APIAnswer {
        var headers: HTTPFields = [:]
        if let contentType { headers[.contentType] = contentType }
        if let token { headers[.authorization] = "Bearer \(token)" }
        return try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body), testCallback: APIAnswer.init)
    }

    func testJSONRoutesRefuseEveryOtherContentTypeWith415InTheirShape() async throws {
        try await harness.withClient { client in
            for contentType in Self.refused {
                let generation1 = try await Self.post(client, "/api/org_token/", Self.login, contentType: contentType)
                XCTAssertEqual(generation1.status, .unsupportedMediaType, "\(contentType ?? "none")")
                XCTAssertEqual(generation1.error, "unsupported_media_type")
                XCTAssertNotNil(generation1.body["detail"] as? String)

                let session = try await Self.post(
                    client, "/api/session", #"{"username":"alice","password":"\#(ServerHarness.password)"}"#, contentType: contentType)
                XCTAssertEqual(session.status, .unsupportedMediaType, "\(contentType ?? "none")")

                let generation2 = try await Self.post(client, "/auth/github/pat", #"{"pat":"ghp_x"}"#, contentType: contentType)
                XCTAssertEqual(generation2.status, .unsupportedMediaType, "\(contentType ?? "none")")
                XCTAssertEqual(generation2.body["status"] as? String, "error")
                XCTAssertEqual(generation2.error, "unsupported_media_type")
            }
            for contentType in Self.accepted {
                let generation1 = try await Self.post(client, "/api/org_token/", Self.login, contentType: contentType)
                XCTAssertEqual(generation1.status, .ok, contentType)
                XCTAssertNotNil(generation1.body["access"] as? String, contentType)
            }
        }
    }

    func testTwoContentTypesAreRefused() async throws {
        try await harness.withClient { client in
            var headers: HTTPFields = [.contentType: "application/json"]
            headers.append(HTTPField(name: .contentType, value: "text/plain"))
            let answer = try await client.execute(
                uri: "/api/org_token/", method: .post, headers: headers, body: ByteBuffer(string: Self.login), testCallback: APIAnswer.init)
            XCTAssertEqual(answer.status, .unsupportedMediaType)
        }
    }

    /// An optional body may be empty without a type; a body that is there must be JSON.
    func testAnOptionalBodyNeedsATypeOnlyWhenItIsThere() async throws {
        try await harness.withClient { client in
            let token = try await client.sessionToken("root")
            // Read as `{}`: no `force`, so the fresh next key is too young to rotate to.
            let empty = try await Self.post(client, "/api/admin/keys/rotate", "", contentType: nil, token: token)
            XCTAssertEqual(empty.status, .conflict, "\(empty.body)")
            let plain = try await Self.post(client, "/api/admin/keys/rotate", "{}", contentType: "text/plain", token: token)
            XCTAssertEqual(plain.status, .unsupportedMediaType, "\(plain.body)")
            XCTAssertEqual(plain.error, "unsupported_media_type")
            let json = try await Self.post(client, "/api/admin/keys/rotate", #"{"force":true}"#, contentType: "application/json", token: token)
            XCTAssertEqual(json.status, .ok, "\(json.body)")
        }
    }

    /// protocol.md: the generation-2 device flow starts with an empty POST and no type; the
    /// OAuth endpoints take forms (RFC 6749 section 3.2).
    func testWhatTheProtocolsSendWithoutJSONStillWorks() async throws {
        try await harness.withClient { client in
            let device = try await Self.post(client, "/auth/github/device", "", contentType: nil)
            XCTAssertNotEqual(device.status, .unsupportedMediaType)
            XCTAssertEqual(device.error, "unavailable", "GitHub is not configured in this harness: \(device.body)")

            let oauth = try await client.form("/oauth/token", "grant_type=refresh_token&refresh_token=unknown")
            XCTAssertEqual(oauth.status, .badRequest)
            XCTAssertEqual(oauth.error, "invalid_grant", "\(oauth.body)")
        }
    }

    /// The 415s are the ones openapi.yaml declares, in each family's shape.
    func testTheRefusalsKeepTheContract() async throws {
        let contract = try OpenAPIContract.load()
        try await harness.withClient { client in
            let token = try await client.sessionToken("root")
            let routes: [(String, String)] = [
                ("/api/org_token/", Self.login), ("/api/org_token/refresh/", #"{"refresh":"x"}"#),
                ("/auth/github/pat", #"{"pat":"x"}"#), ("/auth/github/device/poll", #"{"device_code":"x"}"#),
                ("/api/session", #"{"username":"alice","password":"x"}"#), ("/api/admin/users", #"{"username":"carol"}"#),
                ("/api/admin/keys/rotate", "{}"),
            ]
            for (path, body) in routes {
                try await client.execute(
                    uri: path, method: .post, headers: [.contentType: "text/plain", .authorization: "Bearer \(token)"],
                    body: ByteBuffer(string: body)
                ) { response in
                    XCTAssertEqual(response.status, .unsupportedMediaType, path)
                    let answer = LiveAnswer(
                        method: .post, uri: path, status: response.status, headers: response.headers,
                        body: Array(response.body.readableBytesView))
                    XCTAssertEqual(contract.violations(of: answer), [], path)
                }
            }
        }
    }
}
