import BrokerCore
import BrokerCrypto
import Foundation
import XCTest

/// Hostile and broken tokens, each signed properly with the ring's key unless the point is the
/// signature, so that every rejection below comes from the rule it names.
final class TokenVerifierTests: XCTestCase {
    var harness: CoreHarness!
    var activeKey: RingKey!

    override func setUp() async throws {
        harness = try await CoreHarness.make(algorithm: .es256)
        activeKey = harness.services.keyRing.snapshot.keys.first { $0.metadata.state == .active }
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    var now: Int64 { Int64(harness.clock.now().timeIntervalSince1970) }

    func claims(_ change: (inout [String: Any]) -> Void = { _ in }) -> [String: Any] {
        var claims: [String: Any] = [
            "iss": "http://127.0.0.1:8080", "sub": "alice", "aud": ["org1"], "org": "org1", "org_roles": ["member"],
            "iat": now, "nbf": now, "exp": now + 3600, "jti": "abc", "auth_time": now, "amr": ["pwd"],
            "idp": "local", "token_type": "access", "org_name": "org1", "user_id": 1, "user_name": "alice",
        ]
        change(&claims)
        return claims
    }

    func header(_ change: (inout [String: Any]) -> Void = { _ in }) -> [String: Any] {
        var header: [String: Any] = ["alg": "ES256", "typ": "at+jwt", "kid": activeKey.metadata.kid]
        change(&header)
        return header
    }

    func token(header: [String: Any], claims: [String: Any], key: PrivateKey? = nil) throws -> String {
        let h = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])))
        let p = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])))
        let input = Array("\(h).\(p)".utf8)
        let signature = try (key ?? activeKey.privateKey).sign(input)
        return "\(h).\(p).\(Base64URL.encode(signature))"
    }

    func assertRejected(
        _ token: String, _ expected: TokenRejection, audience: String? = nil, line: UInt = #line
    ) {
        XCTAssertThrowsError(try harness.services.verifier.verify(token, audience: audience), line: line) { error in
            XCTAssertEqual(error as? TokenRejection, expected, line: line)
        }
    }

    func testAWellFormedTokenPasses() throws {
        let claims = try harness.services.verifier.verify(try token(header: header(), claims: claims()), audience: "org1")
        XCTAssertEqual(claims.subject, "alice")
    }

    func testAlgNoneIsRejected() throws {
        let h = Base64URL.encode(Array(#"{"alg":"none","typ":"at+jwt","kid":"\#(activeKey.metadata.kid)"}"#.utf8))
        let p = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: claims())))
        XCTAssertThrowsError(try harness.services.verifier.verify("\(h).\(p)."))
        assertRejected("\(h).\(p).c2ln", .disallowedAlgorithm("none"))
    }

    func testHMACConfusionWithThePublicKeyIsRejected() throws {
        // The classic attack: HS256 keyed with the public key's PEM, which anyone can fetch.
        let pem = Array(try activeKey.publicKey.spkiPEM().utf8)
        let h = Base64URL.encode(Array(#"{"alg":"HS256","typ":"at+jwt","kid":"\#(activeKey.metadata.kid)"}"#.utf8))
        let p = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: claims())))
        let mac = Digest.hmacSHA256(key: pem, message: Array("\(h).\(p)".utf8))
        assertRejected("\(h).\(p).\(Base64URL.encode(mac))", .disallowedAlgorithm("HS256"))
    }

    func testUnknownAndPathLikeKidsAreUnknownKeys() throws {
        for kid in ["../../../../etc/passwd", "/dev/null", "nope", "", String(repeating: "A", count: 43)] {
            assertRejected(try token(header: header { $0["kid"] = kid }, claims: claims()), .unknownKey)
        }
        assertRejected(try token(header: header { $0["kid"] = nil }, claims: claims()), .unknownKey)
    }

    func testEmbeddedKeysAndKeyURLsAreRefused() throws {
        let attacker = try PrivateKey.generate(.es256)
        let jwk = try JSONSerialization.jsonObject(
            with: JSONEncoder().encode(attacker.publicKey.jwk(kid: nil)))
        // Signed by the attacker's own key, offering that key in the header.
        assertRejected(try token(header: header { $0["jwk"] = jwk }, claims: claims(), key: attacker), .disallowedHeader("jwk"))
        assertRejected(try token(header: header { $0["jku"] = "https://evil.example/jwks" }, claims: claims()), .disallowedHeader("jku"))
        assertRejected(try token(header: header { $0["x5u"] = "https://evil.example/cert" }, claims: claims()), .disallowedHeader("x5u"))
        // `crit` is refused already by the JWS parser (no extension is understood).
        XCTAssertThrowsError(try harness.services.verifier.verify(try token(header: header { $0["crit"] = ["exp"] }, claims: claims()))) {
            XCTAssertTrue("\($0)".contains("crit"), "\($0)")
        }
    }

    func testForeignSignatureIsRejected() throws {
        let attacker = try PrivateKey.generate(.es256)
        assertRejected(try token(header: header(), claims: claims(), key: attacker), .badSignature)
        // A valid token with one payload byte changed.
        let good = try token(header: header(), claims: claims())
        var parts = good.split(separator: ".").map(String.init)
        let payload = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: claims { $0["sub"] = "mallory" }, options: [.sortedKeys])))
        parts[1] = payload
        assertRejected(parts.joined(separator: "."), .badSignature)
    }

    func testAlgorithmMustMatchTheKey() throws {
        assertRejected(try token(header: header { $0["alg"] = "RS256" }, claims: claims()), .algorithmMismatch)
    }

    func testTypeIssuerAudienceAndTokenType() throws {
        assertRejected(try token(header: header { $0["typ"] = "JWT" }, claims: claims()), .wrongType)
        assertRejected(try token(header: header { $0["typ"] = nil }, claims: claims()), .wrongType)
        assertRejected(try token(header: header(), claims: claims { $0["iss"] = "https://evil.example" }), .wrongIssuer)
        assertRejected(try token(header: header(), claims: claims()), .wrongAudience, audience: "org2")
        assertRejected(try token(header: header(), claims: claims { $0["aud"] = ["*"] }), .wrongAudience, audience: "org1")
        assertRejected(try token(header: header(), claims: claims { $0["token_type"] = nil }), .missingClaim("token_type"))
        assertRejected(try token(header: header(), claims: claims { $0["token_type"] = "refresh" }), .wrongTokenType)
        assertRejected(try token(header: header(), claims: claims { $0["user_id"] = "1" }), .missingClaim("user_id"))
    }

    func testTimeClaimsWithLeeway() throws {
        // 30 s of leeway by default.
        XCTAssertNoThrow(try harness.services.verifier.verify(try token(header: header(), claims: claims { $0["exp"] = self.now - 29 })))
        assertRejected(try token(header: header(), claims: claims { $0["exp"] = self.now - 31 }), .expired)
        assertRejected(try token(header: header(), claims: claims { $0["nbf"] = self.now + 31 }), .notYetValid)
        assertRejected(try token(header: header(), claims: claims { $0["iat"] = self.now + 31 }), .issuedInFuture)
        assertRejected(try token(header: header(), claims: claims { $0["exp"] = nil }), .missingClaim("exp"))
    }

    func testGarbageNeverCrashes() {
        for garbage in ["", ".", "..", "...", "a.b.c", "a.b", String(repeating: "x", count: 100_000), "é.é.é", "eyJ.eyJ.eyJ"] {
            XCTAssertThrowsError(try harness.services.verifier.verify(garbage))
        }
    }
}
