import BrokerCrypto
import XCTest

/// Known-answer tests from RFC 7515, RFC 8037 and RFC 7638.
final class JOSEVectorTests: XCTestCase {
    // MARK: RFC 7515 A.2 — RS256

    func testRFC7515A2VerifiesWithTheGivenJWK() throws {
        let key = try PublicKey(jwk: JWK(kty: "RSA", n: JOSEVectors.rsaN, e: JOSEVectors.rsaE))
        let jws = try CompactJWS.parse(JOSEVectors.rs256Token)
        XCTAssertEqual(jws.algorithm, .rs256)
        XCTAssertTrue(jws.verify(with: key))
        XCTAssertEqual(
            String(decoding: jws.payload, as: UTF8.self),
            "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}"
        )
    }

    func testRFC7515A2SigningIsDeterministicAndMatchesTheRFC() throws {
        // PKCS#1 v1.5 is deterministic, so our signature of the same input must be the RFC's.
        let key = try PrivateKey(pem: JOSEVectors.rsaTraditionalPEM, algorithm: .rs256)
        let parts = JOSEVectors.rs256Token.split(separator: ".")
        let signingInput = Array("\(parts[0]).\(parts[1])".utf8)
        let signature = try key.sign(signingInput)
        XCTAssertEqual(Base64URL.encode(signature), String(parts[2]))
        XCTAssertEqual(key.publicKey.jwk(kid: nil).n, JOSEVectors.rsaN)
        XCTAssertEqual(key.publicKey.jwk(kid: nil).e, JOSEVectors.rsaE)
    }

    // MARK: RFC 7515 A.3 — ES256

    func testRFC7515A3VerifiesWithTheGivenJWKInItsLowSSpelling() throws {
        let key = try PublicKey(jwk: JWK(kty: "EC", crv: "P-256", x: JOSEVectors.ecX, y: JOSEVectors.ecY))
        let jws = try CompactJWS.parse(JOSEVectors.es256Token)
        XCTAssertEqual(jws.signature.count, 64)
        // The RFC's example happens to have a high S (0xC5...): its other spelling, which
        // verifies everywhere, is the only one the broker accepts.
        XCTAssertFalse(JOSEMalleabilityTests.isLowS(jws.signature))
        XCTAssertFalse(jws.verify(with: key))
        let parts = JOSEVectors.es256Token.split(separator: ".")
        let lowS = JOSEMalleabilityTests.otherS(jws.signature)
        XCTAssertTrue(try CompactJWS.parse("\(parts[0]).\(parts[1]).\(Base64URL.encode(lowS))").verify(with: key))
    }

    func testRFC7515A3KeySignsWhatItsJWKVerifies() throws {
        // ECDSA is randomised, so the RFC's signature cannot be reproduced: sign, then verify
        // with the RFC's public JWK.
        let key = try PrivateKey(pem: JOSEVectors.ecTraditionalPEM, algorithm: .es256)
        XCTAssertEqual(key.publicKey.jwk(kid: nil).x, JOSEVectors.ecX)
        XCTAssertEqual(key.publicKey.jwk(kid: nil).y, JOSEVectors.ecY)
        let rfcKey = try PublicKey(jwk: JWK(kty: "EC", crv: "P-256", x: JOSEVectors.ecX, y: JOSEVectors.ecY))
        let parts = JOSEVectors.es256Token.split(separator: ".")
        let signingInput = Array("\(parts[0]).\(parts[1])".utf8)
        let first = try key.sign(signingInput)
        let second = try key.sign(signingInput)
        XCTAssertEqual(first.count, 64)
        XCTAssertNotEqual(first, second, "ECDSA signatures should use fresh nonces")
        XCTAssertTrue(rfcKey.verify(signature: first, message: signingInput))
        XCTAssertTrue(rfcKey.verify(signature: second, message: signingInput))
    }

    // MARK: RFC 8037 A.4 / A.5 — Ed25519

    func testRFC8037A4SignatureIsExact() throws {
        let key = try PrivateKey(pem: JOSEVectors.edPKCS8PEM, algorithm: .edDSA)
        XCTAssertEqual(key.publicKey.jwk(kid: nil).x, JOSEVectors.edX)
        let parts = JOSEVectors.edDSAToken.split(separator: ".")
        let signingInput = Array("\(parts[0]).\(parts[1])".utf8)
        XCTAssertEqual(Base64URL.encode(try key.sign(signingInput)), String(parts[2]))
        XCTAssertEqual(String(decoding: Base64URL.decode(parts[1])!, as: UTF8.self), "Example of Ed25519 signing")
    }

    func testRFC8037A5Verifies() throws {
        let key = try PublicKey(jwk: JWK(kty: "OKP", crv: "Ed25519", x: JOSEVectors.edX))
        let jws = try CompactJWS.parse(JOSEVectors.edDSAToken)
        XCTAssertEqual(jws.algorithm, .edDSA)
        XCTAssertTrue(jws.verify(with: key))
    }

    // MARK: Thumbprints

    func testRFC7638ThumbprintExample() throws {
        let key = try PublicKey(jwk: JWK(kty: "RSA", n: JOSEVectors.thumbprintN, e: JOSEVectors.thumbprintE, kid: "2011-04-29", alg: "RS256"))
        XCTAssertEqual(key.thumbprint, JOSEVectors.rsaThumbprint)
    }

    func testRFC8037A3Thumbprint() throws {
        let key = try PublicKey(jwk: JWK(kty: "OKP", crv: "Ed25519", x: JOSEVectors.edX))
        XCTAssertEqual(key.thumbprint, JOSEVectors.edThumbprint)
        let privateKey = try PrivateKey(pem: JOSEVectors.edPKCS8PEM, algorithm: .edDSA)
        XCTAssertEqual(privateKey.publicKey.thumbprint, JOSEVectors.edThumbprint)
    }

    func testECThumbprintUsesTheCanonicalMembers() throws {
        // RFC 7638 gives no EC example; recompute the canonical form independently.
        let key = try PublicKey(jwk: JWK(kty: "EC", crv: "P-256", x: JOSEVectors.ecX, y: JOSEVectors.ecY, kid: "ignored"))
        let canonical = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"\(JOSEVectors.ecX)\",\"y\":\"\(JOSEVectors.ecY)\"}"
        XCTAssertEqual(key.thumbprint, Base64URL.encode(Digest.sha256(Array(canonical.utf8))))
    }

    // MARK: Digests

    func testSHA256AndHMACKnownAnswers() {
        XCTAssertEqual(hex(Digest.sha256(Array("abc".utf8))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // The stored form of refresh tokens and the cache keys of secrets: lower-case hex.
        XCTAssertEqual(Digest.sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(Digest.sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hex(Digest.sha256([UInt8]())), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // RFC 4231 test case 2.
        XCTAssertEqual(
            hex(Digest.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        )
    }

    func testConstantTimeEquals() {
        XCTAssertTrue(constantTimeEquals([1, 2, 3], [1, 2, 3]))
        XCTAssertFalse(constantTimeEquals([1, 2, 3], [1, 2, 4]))
        XCTAssertFalse(constantTimeEquals([1, 2, 3], [1, 2]))
        XCTAssertTrue(constantTimeEquals([], []))
    }

    func testSecureRandomProducesDistinctBytes() {
        let a = SecureRandom.bytes(32)
        let b = SecureRandom.bytes(32)
        XCTAssertEqual(a.count, 32)
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(SecureRandom.bytes(0), [])
    }

    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
