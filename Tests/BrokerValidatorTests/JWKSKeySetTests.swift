import BrokerCrypto
import BrokerValidator
import Foundation
import XCTest

/// What a JWKS entry must be to be trusted, and when a whole document is refused.
final class JWKSKeySetTests: XCTestCase {
    /// An RSA public key of 1024 bits: OpenSSL imports any odd modulus as a public key, so
    /// the size rule is all that stands between it and the key set.
    static var rsa1024: [String: Any] { [
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": "weak-rsa", "e": "AQAB",
        "n": Base64URL.encode([0xC3] + [UInt8](repeating: 0x5A, count: 126) + [0x01]),
    ] }

    func testUnusableEntriesAreSkippedAndTheRestKept() throws {
        let good = JWKSDocuments.jwk(TestKeys.es256)
        var wrongAlgForType = JWKSDocuments.jwk(TestKeys.rs256, kid: "rsa-claiming-es256")
        wrongAlgForType["alg"] = "ES256"
        var noAlg = JWKSDocuments.jwk(TestKeys.edDSA, kid: "no-alg")
        noAlg["alg"] = nil
        var unknownAlg = JWKSDocuments.jwk(TestKeys.es256, kid: "es512")
        unknownAlg["alg"] = "ES512"
        var encryption = JWKSDocuments.jwk(TestKeys.rs256, kid: "enc")
        encryption["use"] = "enc"
        var offCurve = JWKSDocuments.jwk(TestKeys.es256, kid: "off-curve")
        offCurve["y"] = Base64URL.encode([UInt8](repeating: 7, count: 32))
        var noKid = JWKSDocuments.jwk(TestKeys.rs256)
        noKid["kid"] = nil
        var numberN = JWKSDocuments.jwk(TestKeys.rs256, kid: "number-n")
        numberN["n"] = 12345
        let symmetric: [String: Any] = ["kty": "oct", "alg": "HS256", "kid": "hmac", "k": "c2VjcmV0"]
        let unknownType: [String: Any] = ["kty": "XYZ", "alg": "RS256", "kid": "xyz"]
        let longKid = JWKSDocuments.jwk(TestKeys.edDSA, kid: String(repeating: "k", count: 1000))

        let document = JWKSDocuments.document([
            good, wrongAlgForType, noAlg, unknownAlg, encryption, offCurve, noKid, numberN, symmetric, unknownType,
            Self.rsa1024, longKid, "not an object", 42,
        ])
        let set = try JWKSKeySet(document: document, maximumSize: 1 << 20)
        XCTAssertEqual(Array(set.keys.keys), [TestKeys.kid(TestKeys.es256)])
        XCTAssertEqual(set.skipped.count, 13, set.skipped.map(\.description).joined(separator: "\n"))
        XCTAssertTrue(set.skipped.contains { $0.kid == "weak-rsa" && $0.reason.contains("2048") }, "\(set.skipped)")
        XCTAssertTrue(set.skipped.contains { $0.kid == "hmac" && $0.reason.contains("HS256") })
        XCTAssertTrue(set.skipped.contains { $0.kid == "no-alg" && $0.reason == "no alg" })
        XCTAssertTrue(set.skipped.allSatisfy { ($0.kid?.count ?? 0) <= 64 }, "shown kids are shortened")
    }

    func testEachKeyKeepsTheAlgorithmItDeclares() throws {
        let set = try JWKSKeySet(
            document: JWKSDocuments.document(TestKeys.es256, TestKeys.rs256, TestKeys.edDSA, TestKeys.ed25519), maximumSize: 1 << 20)
        for algorithm in JWSAlgorithm.allCases {
            XCTAssertEqual(set.key(for: TestKeys.kid(TestKeys.key(algorithm)))?.algorithm, algorithm)
        }
    }

    func testAKidPublishedTwiceIsTrustedForNeither() throws {
        let document = JWKSDocuments.document([
            JWKSDocuments.jwk(TestKeys.es256, kid: "same"), JWKSDocuments.jwk(TestKeys.attacker, kid: "same"),
            JWKSDocuments.jwk(TestKeys.rs256),
        ])
        let set = try JWKSKeySet(document: document, maximumSize: 1 << 20)
        XCTAssertNil(set.key(for: "same"))
        XCTAssertNotNil(set.key(for: TestKeys.kid(TestKeys.rs256)))
    }

    func testUnusableDocumentsAreRefusedWhole() {
        let refused: [(String, [UInt8])] = [
            ("not JSON", Array("<html>502 Bad Gateway</html>".utf8)),
            ("no keys", Array(#"{"keys":{}}"#.utf8)),
            ("an array", Array("[]".utf8)),
            ("empty", Array(#"{"keys":[]}"#.utf8)),
            ("only unusable keys", JWKSDocuments.document([Self.rsa1024])),
        ]
        for (what, document) in refused {
            XCTAssertThrowsError(try JWKSKeySet(document: document, maximumSize: 1 << 20), what)
        }
    }

    func testOversizedDocumentsAreRefused() throws {
        let document = JWKSDocuments.document(TestKeys.es256)
        XCTAssertNoThrow(try JWKSKeySet(document: document, maximumSize: document.count))
        XCTAssertThrowsError(try JWKSKeySet(document: document, maximumSize: document.count - 1)) {
            XCTAssertTrue("\($0)".contains("exceeds"), "\($0)")
        }
    }
}
