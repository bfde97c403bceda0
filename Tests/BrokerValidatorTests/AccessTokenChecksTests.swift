import BrokerCrypto
import BrokerValidator
import Foundation
import XCTest

/// Hostile headers and claims against the shared rules. Every token is properly signed unless
/// the signature is the point, so each rejection comes from the rule it names.
final class AccessTokenChecksTests: XCTestCase {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    var factory: TokenFactory { TokenFactory(now: Int64(now.timeIntervalSince1970)) }
    let checks = AccessTokenChecks(issuer: TokenFactory.issuer, leeway: 30)

    /// The published keys: ES256, RS256, EdDSA and Ed25519, by thumbprint.
    func lookup(_ kid: String) -> PublicKey? {
        [TestKeys.es256, TestKeys.rs256, TestKeys.edDSA, TestKeys.ed25519].first { TestKeys.kid($0) == kid }?.publicKey
    }

    func verify(_ token: String, audience: String? = "cluster1", checks: AccessTokenChecks? = nil) throws -> AccessTokenClaims {
        try (checks ?? self.checks).verify(token, audience: audience, now: now, key: lookup)
    }

    func assertRejected(
        _ token: String, _ expected: TokenRejection, audience: String? = "cluster1", checks: AccessTokenChecks? = nil,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try verify(token, audience: audience, checks: checks), line: line) { error in
            XCTAssertEqual(error as? TokenRejection, expected, line: line)
        }
    }

    func testAGoodTokenOfEachAlgorithmPasses() throws {
        for algorithm in JWSAlgorithm.allCases {
            let claims = try verify(try factory.good(TestKeys.key(algorithm)))
            XCTAssertEqual(claims.subject, "alice", "\(algorithm)")
            XCTAssertEqual(claims.organizationRoles, ["member", "owner"])
        }
    }

    func testAlgNoneIsRejected() throws {
        let h = Base64URL.encode(Array(#"{"alg":"none","typ":"at+jwt","kid":"\#(TestKeys.kid(TestKeys.es256))"}"#.utf8))
        let p = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: factory.claims())))
        // The unsigned form has no signature part at all, the parser refuses it.
        XCTAssertThrowsError(try verify("\(h).\(p)."))
        assertRejected("\(h).\(p).c2ln", .disallowedAlgorithm("none"))
        for spelling in ["None", "NONE", "nOnE"] {
            let h = Base64URL.encode(Array(#"{"alg":"\#(spelling)","typ":"at+jwt","kid":"\#(TestKeys.kid(TestKeys.es256))"}"#.utf8))
            assertRejected("\(h).\(p).c2ln", .disallowedAlgorithm(spelling))
        }
    }

    func testHS256KeyedWithThePublicKeyIsRejected() throws {
        // The classic confusion: HMAC keyed with the PEM or JWK anyone can download.
        for key in [TestKeys.rs256, TestKeys.es256] {
            let header = #"{"alg":"HS256","typ":"at+jwt","kid":"\#(TestKeys.kid(key))"}"#
            let h = Base64URL.encode(Array(header.utf8))
            let p = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: factory.claims())))
            for secret in [Array(try key.publicKey.spkiPEM().utf8), Array(try JSONEncoder().encode(key.publicKey.jwk(kid: nil)))] {
                let mac = Digest.hmacSHA256(key: secret, message: Array("\(h).\(p)".utf8))
                assertRejected("\(h).\(p).\(Base64URL.encode(mac))", .disallowedAlgorithm("HS256"))
            }
        }
    }

    func testAlgMustBeTheAlgorithmTheKeyDeclares() throws {
        // The header names RS256 but the kid is the ES256 key, whatever signed it.
        assertRejected(
            try factory.token(header: factory.header(TestKeys.es256) { $0["alg"] = "RS256" }, claims: factory.claims(),
                              key: TestKeys.rs256),
            .algorithmMismatch)
        assertRejected(
            try factory.token(header: factory.header(TestKeys.rs256) { $0["alg"] = "ES256" }, claims: factory.claims(),
                              key: TestKeys.es256),
            .algorithmMismatch)
        assertRejected(
            try factory.token(header: factory.header(TestKeys.edDSA) { $0["alg"] = "ES256" }, claims: factory.claims()),
            .algorithmMismatch)
        // Other algorithms of a family we support are not supported.
        for alg in ["RS384", "RS512", "PS256", "ES384", "ES256K", "Ed448", "ed25519", "rs256"] {
            assertRejected(
                try factory.token(header: factory.header { $0["alg"] = alg }, claims: factory.claims()),
                .disallowedAlgorithm(alg))
        }
    }

    func testKeysAndKeyURLsInTheHeaderAreRefused() throws {
        let attackerJWK = try JSONSerialization.jsonObject(
            with: JSONEncoder().encode(TestKeys.attacker.publicKey.jwk(kid: TestKeys.kid(TestKeys.es256))))
        // Signed by the attacker, offering the attacker's key under the real kid.
        assertRejected(
            try factory.token(header: factory.header { $0["jwk"] = attackerJWK }, claims: factory.claims(), key: TestKeys.attacker),
            .disallowedHeader("jwk"))
        let refused: [(String, Any)] = [
            ("jku", "https://evil.example/jwks.json"), ("x5u", "https://evil.example/cert.pem"), ("x5c", ["MIIB"]),
            ("x5t", "abc"), ("x5t#S256", "abc"), ("b64", false),
        ]
        for (name, value) in refused {
            assertRejected(try factory.token(header: factory.header { $0[name] = value }, claims: factory.claims()),
                           .disallowedHeader(name))
        }
        // `crit` is refused by the JWS parser already: no extension is understood.
        XCTAssertThrowsError(try verify(try factory.token(header: factory.header { $0["crit"] = ["exp"] }, claims: factory.claims()))) {
            guard case .malformed(let why)? = $0 as? TokenRejection else { return XCTFail("\($0)") }
            XCTAssertTrue(why.contains("crit"), why)
        }
    }

    func testUnknownMissingAndPathLikeKidsAreUnknownKeys() throws {
        let kids: [Any] = [
            "../../../../etc/passwd", "/dev/null", "file:///etc/passwd", "https://evil.example/key", "nope", "",
            String(repeating: "A", count: 43), TestKeys.kid(TestKeys.attacker), 42, ["a"],
        ]
        for kid in kids {
            assertRejected(try factory.token(header: factory.header { $0["kid"] = kid }, claims: factory.claims()), .unknownKey)
        }
        assertRejected(try factory.token(header: factory.header { $0["kid"] = nil }, claims: factory.claims()), .unknownKey)
    }

    func testForeignAndAlteredSignaturesAreRejected() throws {
        assertRejected(try factory.token(header: factory.header(), claims: factory.claims(), key: TestKeys.attacker), .badSignature)
        var parts = try factory.good().split(separator: ".").map(String.init)
        parts[1] = Base64URL.encode(Array(try JSONSerialization.data(
            withJSONObject: factory.claims { $0["sub"] = "mallory" }, options: [.sortedKeys])))
        assertRejected(parts.joined(separator: "."), .badSignature)
    }

    func testTypIsRequired() throws {
        for typ in ["JWT", "jwt", "at+JWT+x", ""] {
            assertRejected(try factory.token(header: factory.header { $0["typ"] = typ }, claims: factory.claims()), .wrongType)
        }
        assertRejected(try factory.token(header: factory.header { $0["typ"] = nil }, claims: factory.claims()), .wrongType)
        for typ in ["at+jwt", "AT+JWT", "application/at+jwt"] {
            XCTAssertNoThrow(try verify(try factory.token(header: factory.header { $0["typ"] = typ }, claims: factory.claims())))
        }
    }

    func testIssuerAndTokenType() throws {
        assertRejected(try factory.good { $0["iss"] = "https://evil.example" }, .wrongIssuer)
        assertRejected(try factory.good { $0["iss"] = TokenFactory.issuer + "/" }, .wrongIssuer)
        assertRejected(try factory.good { $0["iss"] = nil }, .missingClaim("iss"))
        assertRejected(try factory.good { $0["token_type"] = nil }, .missingClaim("token_type"))
        assertRejected(try factory.good { $0["token_type"] = "refresh" }, .wrongTokenType)
        assertRejected(try factory.good { $0["user_id"] = "1" }, .missingClaim("user_id"))
    }

    func testAudienceNeverHonoursAWildcard() throws {
        assertRejected(try factory.good(), .wrongAudience, audience: "cluster2")
        assertRejected(try factory.good { $0["aud"] = ["*"] }, .wrongAudience)
        assertRejected(try factory.good { $0["aud"] = "*" }, .wrongAudience)
        assertRejected(try factory.good { $0["aud"] = ["*"] }, .wrongAudience, audience: "*")
        assertRejected(try factory.good { $0["aud"] = ["cluster10", "Cluster1", "cluster"] }, .wrongAudience)
        XCTAssertNoThrow(try verify(try factory.good { $0["aud"] = ["runner", "cluster1"] }))
        XCTAssertNoThrow(try verify(try factory.good { $0["aud"] = "cluster1" }), "a single string aud")
    }

    func testTimeClaimsWithLeeway() throws {
        let t = factory.now
        XCTAssertNoThrow(try verify(try factory.good { $0["exp"] = t - 29 }))
        assertRejected(try factory.good { $0["exp"] = t - 30 }, .expired)
        assertRejected(try factory.good { $0["exp"] = t - 31 }, .expired)
        XCTAssertNoThrow(try verify(try factory.good { $0["nbf"] = t + 30 }))
        assertRejected(try factory.good { $0["nbf"] = t + 31 }, .notYetValid)
        assertRejected(try factory.good { $0["iat"] = t + 31 }, .issuedInFuture)
        assertRejected(try factory.good { $0["exp"] = nil }, .missingClaim("exp"))
        assertRejected(try factory.good { $0["exp"] = Double(t + 100) + 0.5 }, .missingClaim("exp"))
        assertRejected(try factory.good { $0["nbf"] = nil }, .missingClaim("nbf"))
    }

    func testExtremeTimeClaimsNeverTrap() throws {
        // `exp` at Int64.max plus the leeway overflowed and trapped (found by Fuzzing/FuzzJWS).
        XCTAssertNoThrow(try verify(try factory.good { $0["exp"] = Int64.max }))
        assertRejected(try factory.good { $0["exp"] = Int64.min }, .expired)
        assertRejected(try factory.good { $0["nbf"] = Int64.max }, .notYetValid)
        assertRejected(try factory.good { $0["iat"] = Int64.max }, .issuedInFuture)
        XCTAssertNoThrow(try verify(try factory.good { $0["nbf"] = Int64.min; $0["iat"] = Int64.min }))
    }

    func testLeewayIsBounded() throws {
        let generous = AccessTokenChecks(issuer: TokenFactory.issuer, leeway: 86_400)
        XCTAssertEqual(generous.leeway, Int64(AccessTokenChecks.maximumLeeway))
        XCTAssertEqual(AccessTokenChecks(issuer: TokenFactory.issuer, leeway: -5).leeway, 0)
        let t = factory.now
        XCTAssertNoThrow(try verify(try factory.good { $0["exp"] = t - 299 }, checks: generous))
        assertRejected(try factory.good { $0["exp"] = t - 301 }, .expired, checks: generous)
        assertRejected(try factory.good { $0["exp"] = t - 3600 }, .expired, checks: generous)
    }

    func testAudienceIsTheLastRule() throws {
        // A gateway answers 403 only when the audience alone fails: any other failure must win.
        assertRejected(try factory.good { $0["exp"] = self.factory.now - 3600; $0["aud"] = ["cluster2"] }, .expired)
        assertRejected(try factory.good { $0["iss"] = "https://evil.example"; $0["aud"] = ["cluster2"] }, .wrongIssuer)
        assertRejected(
            try factory.token(header: factory.header(), claims: factory.claims { $0["aud"] = ["cluster2"] }, key: TestKeys.attacker),
            .badSignature)
    }

    func testStagedUseMatchesTheOneCall() throws {
        let token = try factory.good(TestKeys.rs256)
        let unverified = try checks.inspect(token)
        XCTAssertEqual(unverified.keyID, TestKeys.kid(TestKeys.rs256))
        XCTAssertEqual(unverified.algorithm, .rs256)
        let claims = try checks.verify(unverified, key: TestKeys.rs256.publicKey, audience: nil, now: now)
        XCTAssertNoThrow(try checks.checkAudience(claims, contains: "cluster1"))
        XCTAssertThrowsError(try checks.checkAudience(claims, contains: "cluster2"))
        XCTAssertThrowsError(try checks.verify(unverified, key: nil, audience: nil, now: now)) {
            XCTAssertEqual($0 as? TokenRejection, .unknownKey)
        }
    }

    func testGarbageNeverCrashes() {
        let garbage = [
            "", ".", "..", "...", "a.b.c", "a.b", String(repeating: "x", count: 100_000), "é.é.é", "eyJ.eyJ.eyJ",
            "eyJhbGciOiJFUzI1NiJ9..", "e30.e30.e30", "bnVsbA.bnVsbA.bnVsbA",
        ]
        for token in garbage {
            XCTAssertThrowsError(try verify(token))
        }
    }

    func testRejectionsNeverQuoteTheToken() throws {
        let token = try factory.token(header: factory.header { $0["alg"] = String(repeating: "Z", count: 500) }, claims: factory.claims())
        XCTAssertThrowsError(try verify(token)) { error in
            XCTAssertLessThan("\(error)".count, 100)
            XCTAssertFalse("\(error)".contains(token.prefix(20)))
        }
    }
}
