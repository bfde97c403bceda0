import BrokerCore
import BrokerCrypto
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

/// The generation-1 API over a real loopback socket, shaped exactly as clients 2.x–5.0.2 parse it.
final class Generation1HTTPTests: XCTestCase {
    var harness: ServerHarness!

    override func setUp() async throws {
        harness = try await ServerHarness.make()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    static let login = #"{"username":"alice","password":"correct horse battery staple","org_name":"org1"}"#

    func testLoginReturnsTheGeneration1Bundle() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let (status, body) = try await client.postJSON("/api/org_token/", Self.login)
            XCTAssertEqual(status, .ok)
            XCTAssertEqual(Set(body.keys), ["access", "refresh", "access_lifetime", "refresh_lifetime", "exp"])
            XCTAssertEqual(body["access_lifetime"] as? String, "3600.0")
            XCTAssertEqual(body["refresh_lifetime"] as? String, "86400.0")
            let access = try XCTUnwrap(body["access"] as? String)
            let claims = try harness.services.verifier.verify(access, audience: "org1")
            // `exp` as Python's strftime('%Y-%m-%dT%H:%M:%S%Z') of the access token's expiry.
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "UTC")
            formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
            let expected = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(claims.expiresAt))) + "UTC"
            XCTAssertEqual(body["exp"] as? String, expected)
            XCTAssertEqual(claims.organization, "org1")
        }
    }

    func testTokenResponsesAreNotCacheable() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            try await client.execute(
                uri: "/api/org_token", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: Self.login)
            ) { response in
                XCTAssertEqual(response.status, .ok, "the trailing slash is optional")
                XCTAssertEqual(response.headers[.cacheControl], "no-store")
                XCTAssertEqual(response.headers[.contentType], "application/json")
            }
        }
    }

    func testUnknownFieldsAreIgnored() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let (status, _) = try await client.postJSON(
                "/api/org_token/",
                #"{"username":"alice","password":"correct horse battery staple","org_name":"org1","client":"sliderule 4.1","extra":{"a":[1,2]}}"#)
            XCTAssertEqual(status, .ok)
        }
    }

    func testCredentialAndMembershipErrors() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            var (status, body) = try await client.postJSON(
                "/api/org_token/", #"{"username":"alice","password":"wrong password 123","org_name":"org1"}"#)
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["error"] as? String, "invalid_credentials")
            XCTAssertNotNil(body["detail"] as? String)
            (status, body) = try await client.postJSON(
                "/api/org_token/", #"{"username":"alice","password":"correct horse battery staple","org_name":"nope"}"#)
            XCTAssertEqual(status, .forbidden)
            XCTAssertEqual(body["error"] as? String, "unknown_organization")
            (status, body) = try await client.postJSON(
                "/api/org_token/", #"{"username":"bob","password":"correct horse battery staple","org_name":"org1"}"#)
            XCTAssertEqual(status, .forbidden)
            XCTAssertEqual(body["error"] as? String, "not_a_member")
            try await harness.services.accounts.setActive("alice", false, by: .operator)
            (status, body) = try await client.postJSON("/api/org_token/", Self.login)
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["error"] as? String, "account_disabled")
        }
    }

    func testRefreshRotationReuseAndBlacklist() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/api/org_token/", Self.login)
            let first = try XCTUnwrap(login["refresh"] as? String)
            let access = try XCTUnwrap(login["access"] as? String)
            // Clients send the old access token as Bearer too; it is not needed.
            var (status, body) = try await client.postJSON(
                "/api/org_token/refresh/", #"{"refresh":"\#(first)"}"#, headers: [.authorization: "Bearer \(access)"])
            XCTAssertEqual(status, .ok)
            let second = try XCTUnwrap(body["refresh"] as? String)
            XCTAssertNotEqual(second, first)
            XCTAssertEqual(Set(body.keys), ["access", "refresh", "access_lifetime", "refresh_lifetime", "exp"])

            harness.clock.advance(by: 5)
            (status, body) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(first)"}"#)
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["error"] as? String, "refresh_token_reused")
            (status, body) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(second)"}"#)
            XCTAssertEqual(status, .unauthorized, "reuse revoked the whole family")

            let (_, again) = try await client.postJSON("/api/org_token/", Self.login)
            let third = try XCTUnwrap(again["refresh"] as? String)
            (status, body) = try await client.postJSON("/api/token/blacklist/", #"{"refresh":"\#(third)"}"#)
            XCTAssertEqual(status, .ok)
            XCTAssertTrue(body.isEmpty)
            (status, body) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(third)"}"#)
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["error"] as? String, "invalid_refresh_token")
        }
    }

    func testGraceWindowGivesConcurrentRefreshesTheSameSuccessor() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/api/org_token/", Self.login)
            let first = try XCTUnwrap(login["refresh"] as? String)
            async let a = client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(first)"}"#)
            async let b = client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(first)"}"#)
            let (one, two) = try await (a, b)
            XCTAssertEqual(one.0, .ok)
            XCTAssertEqual(two.0, .ok)
            XCTAssertEqual(one.1["refresh"] as? String, two.1["refresh"] as? String)
        }
    }

    func testGraceWindowNeverHandsOutAUsedSuccessorOrTheLiveToken() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/api/org_token/", Self.login)
            let r0 = try XCTUnwrap(login["refresh"] as? String)
            let (_, first) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(r0)"}"#)
            let r1 = try XCTUnwrap(first["refresh"] as? String)
            harness.clock.advance(by: 1)
            let (_, second) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(r1)"}"#)
            let r2 = try XCTUnwrap(second["refresh"] as? String)
            // Still inside the 2 s window of R0's use, but R1 has been used: R0 is in other hands.
            var (status, body) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(r0)"}"#)
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["error"] as? String, "refresh_token_reused")
            XCTAssertNil(body["refresh"])
            (status, body) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(r2)"}"#)
            XCTAssertEqual(status, .unauthorized, "the family is revoked, the live token with it")
            XCTAssertEqual(body["error"] as? String, "invalid_refresh_token")
        }
    }

    func testMembershipLostBetweenLoginAndRefreshIs403() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/api/org_token/", Self.login)
            let refresh = try XCTUnwrap(login["refresh"] as? String)
            try await harness.services.accounts.removeMember(organization: "org1", username: "alice", by: .operator)
            let (status, body) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(refresh)"}"#)
            XCTAssertEqual(status, .forbidden)
            XCTAssertEqual(body["error"] as? String, "not_a_member")
        }
    }

    func testSessionCapOverHTTP() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/api/org_token/", Self.login)
            var refresh = try XCTUnwrap(login["refresh"] as? String)
            for _ in 0..<7 {
                harness.clock.advance(by: 23 * 3600)
                let (status, body) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(refresh)"}"#)
                XCTAssertEqual(status, .ok)
                refresh = try XCTUnwrap(body["refresh"] as? String)
            }
            harness.clock.advance(by: 7 * 3600 + 1)  // just past 168 h after login
            let (status, body) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(refresh)"}"#)
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["error"] as? String, "session_expired")
        }
    }

    func testMembershipStatus() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/api/org_token/", Self.login)
            let access = try XCTUnwrap(login["access"] as? String)
            var (status, body) = try await client.getJSON("/api/membership_status/org1/", headers: [.authorization: "Bearer \(access)"])
            XCTAssertEqual(status, .ok)
            XCTAssertEqual(body["active"] as? Bool, true)
            (status, body) = try await client.getJSON("/api/membership_status/org2/", headers: [.authorization: "Bearer \(access)"])
            XCTAssertEqual(body["active"] as? Bool, false)
            (status, body) = try await client.getJSON("/api/membership_status/org1/")
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["error"] as? String, "missing_token")
            (status, body) = try await client.getJSON("/api/membership_status/org1/", headers: [.authorization: "Bearer nope.nope.nope"])
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["error"] as? String, "invalid_token")
            // A token of a foreign key: the reason is in the JSON error.
            let parts = access.split(separator: ".")
            let forged = "\(parts[0]).\(parts[1]).\(Base64URL.encode(SecureRandom.bytes(256)))"
            (status, body) = try await client.getJSON("/api/membership_status/org1/", headers: [.authorization: "Bearer \(forged)"])
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["detail"] as? String, "signature is invalid")
            harness.clock.advance(by: 3600 + 60)
            (status, body) = try await client.getJSON("/api/membership_status/org1/", headers: [.authorization: "Bearer \(access)"])
            XCTAssertEqual(status, .unauthorized)
            XCTAssertEqual(body["detail"] as? String, "token has expired")
        }
    }

    func testBadInputGets400Or413AndAJSONError() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let cases: [(String, [UInt8])] = [
                ("malformed JSON", Array(#"{"username":"alice","#.utf8)),
                ("not an object", Array(#"["alice"]"#.utf8)),
                ("wrong type", Array(#"{"username":"alice","password":12345678901234,"org_name":"org1"}"#.utf8)),
                ("null", Array(#"{"username":null,"password":"correct horse battery staple","org_name":"org1"}"#.utf8)),
                ("missing field", Array(#"{"username":"alice","org_name":"org1"}"#.utf8)),
                ("empty password", Array(#"{"username":"alice","password":"","org_name":"org1"}"#.utf8)),
                ("control character", Array(#"{"username":"ali\u0000ce","password":"correct horse battery staple","org_name":"org1"}"#.utf8)),
                ("newline in org", Array(#"{"username":"alice","password":"correct horse battery staple","org_name":"org\n1"}"#.utf8)),
                ("non-UTF-8", [0x7B, 0x22, 0x75, 0x22, 0x3A, 0x22, 0xFF, 0xFE, 0x22, 0x7D]),
                ("empty body", []),
                ("duplicate keys", Array(#"{"username":"bob","username":"alice","password":"correct horse battery staple","org_name":"org1"}"#.utf8)),
            ]
            for (name, bytes) in cases {
                let (status, body) = try await client.postBytes("/api/org_token/", bytes)
                XCTAssertEqual(status, .badRequest, name)
                XCTAssertEqual(body["error"] as? String, "invalid_request", name)
                XCTAssertNotNil(body["detail"] as? String, name)
            }
            let huge = Array(#"{"username":"alice","password":""#.utf8) + Array(repeating: UInt8(ascii: "a"), count: 70_000) + Array(#"","org_name":"org1"}"#.utf8)
            let (status, body) = try await client.postBytes("/api/org_token/", huge)
            XCTAssertEqual(status, .contentTooLarge)
            XCTAssertEqual(body["error"] as? String, "payload_too_large")
            let (refreshStatus, _) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":42}"#)
            XCTAssertEqual(refreshStatus, .badRequest)
        }
    }

    func testUnknownRoutesAndMethodsAnswerJSON() async throws {
        let harness = self.harness!
        try await harness.withClient { client in
            let (status, body) = try await client.getJSON("/api/nothing-here/")
            XCTAssertEqual(status, .notFound)
            XCTAssertEqual(body["error"] as? String, "not_found")
            let (getStatus, _) = try await client.getJSON("/api/org_token/")
            XCTAssertTrue([.notFound, .methodNotAllowed].contains(getStatus))
        }
    }

    func testSecretsNeverReachTheLogs() async throws {
        let harness = self.harness!
        let secrets: [String] = try await harness.withClient { client in
            let (_, login) = try await client.postJSON("/api/org_token/", Self.login)
            _ = try await client.postJSON("/api/org_token/", #"{"username":"alice","password":"wrong password 123","org_name":"org1"}"#)
            let refresh = try XCTUnwrap(login["refresh"] as? String)
            let (_, next) = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(refresh)"}"#)
            harness.clock.advance(by: 10)
            _ = try await client.postJSON("/api/org_token/refresh/", #"{"refresh":"\#(refresh)"}"#)
            let access = try XCTUnwrap(login["access"] as? String)
            _ = try await client.getJSON("/api/membership_status/org1/", headers: [.authorization: "Bearer \(access)x"])
            return [
                ServerHarness.password, "wrong password 123", refresh, access,
                try XCTUnwrap(next["refresh"] as? String), try XCTUnwrap(next["access"] as? String),
            ]
        }
        let logs = harness.logs.all
        XCTAssertFalse(logs.isEmpty, "the harness captures logs")
        for line in logs {
            for secret in secrets {
                XCTAssertFalse(line.contains(secret), "a secret reached the log: \(line.prefix(120))")
                XCTAssertFalse(line.contains(String(secret.suffix(20))), "part of a secret reached the log")
            }
        }
    }
}
