import BrokerCrypto
import Foundation
import XCTest

/// Key generation, PEM and JWK import/export, and the algorithm checks on loaded keys.
final class JOSEKeyTests: XCTestCase {
    func testPEMRoundTripForEveryAlgorithm() throws {
        for algorithm in JWSAlgorithm.allCases {
            let key = try PrivateKey.generate(algorithm)
            let pkcs8 = try key.pkcs8PEM()
            XCTAssertTrue(pkcs8.hasPrefix("-----BEGIN PRIVATE KEY-----\n"), "\(algorithm): \(pkcs8.prefix(40))")
            let reloaded = try PrivateKey(pem: pkcs8, algorithm: algorithm)
            XCTAssertEqual(reloaded.publicKey.thumbprint, key.publicKey.thumbprint, "\(algorithm)")
            XCTAssertEqual(try reloaded.pkcs8PEM(), pkcs8, "\(algorithm)")

            let spki = try key.publicKey.spkiPEM()
            XCTAssertTrue(spki.hasPrefix("-----BEGIN PUBLIC KEY-----\n"), "\(algorithm)")
            let publicKey = try PublicKey(pem: spki, algorithm: algorithm)
            XCTAssertEqual(publicKey.thumbprint, key.publicKey.thumbprint, "\(algorithm)")
            XCTAssertEqual(publicKey.jwk(kid: "k"), key.publicKey.jwk(kid: "k"), "\(algorithm)")

            let message = Array("round trip \(algorithm)".utf8)
            XCTAssertTrue(publicKey.verify(signature: try reloaded.sign(message), message: message), "\(algorithm)")
            XCTAssertTrue(key.publicKey.verify(signature: try reloaded.sign(message), message: message), "\(algorithm)")
        }
    }

    func testTraditionalPEMFormsLoad() throws {
        let rsa = try PrivateKey(pem: JOSEVectors.rsaTraditionalPEM, algorithm: .rs256)
        XCTAssertTrue(try rsa.pkcs8PEM().hasPrefix("-----BEGIN PRIVATE KEY-----"))
        let ec = try PrivateKey(pem: JOSEVectors.ecTraditionalPEM, algorithm: .es256)
        XCTAssertEqual(ec.publicKey.jwk(kid: nil).x, JOSEVectors.ecX)
    }

    func testGeneratedKeysJWKRoundTripThroughJSONAndVerify() throws {
        for algorithm in JWSAlgorithm.allCases {
            let key = try PrivateKey.generate(algorithm)
            let jwk = key.publicKey.jwk(kid: key.publicKey.thumbprint)
            XCTAssertEqual(jwk.alg, algorithm.rawValue)
            XCTAssertEqual(jwk.use, "sig")
            XCTAssertEqual(jwk.kid, key.publicKey.thumbprint)

            let json = try JSONEncoder().encode(jwk)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: json) as? [String: String])
            let decoded = try JSONDecoder().decode(JWK.self, from: json)
            XCTAssertEqual(decoded, jwk)

            let imported = try PublicKey(jwk: decoded)
            XCTAssertEqual(imported.algorithm, algorithm)
            XCTAssertEqual(imported.thumbprint, key.publicKey.thumbprint)
            let message = Array("jwk \(algorithm)".utf8)
            XCTAssertTrue(imported.verify(signature: try key.sign(message), message: message))

            switch algorithm {
            case .rs256:
                XCTAssertEqual(Set(object.keys), ["kty", "n", "e", "kid", "alg", "use"])
                XCTAssertEqual(object["kty"], "RSA")
                XCTAssertEqual(jwk.e, "AQAB", "public exponent must be 65537")
                XCTAssertEqual(Base64URL.decode(try XCTUnwrap(jwk.n))?.count, 256, "modulus must be 2048 bits")
            case .es256:
                XCTAssertEqual(Set(object.keys), ["kty", "crv", "x", "y", "kid", "alg", "use"])
                XCTAssertEqual(object["crv"], "P-256")
                XCTAssertEqual(Base64URL.decode(try XCTUnwrap(jwk.x))?.count, 32)
                XCTAssertEqual(Base64URL.decode(try XCTUnwrap(jwk.y))?.count, 32)
            case .edDSA, .ed25519:
                XCTAssertEqual(Set(object.keys), ["kty", "crv", "x", "kid", "alg", "use"])
                XCTAssertEqual(object["kty"], "OKP")
                XCTAssertEqual(object["crv"], "Ed25519")
            }
        }
    }

    func testJWKWithoutKidOmitsIt() throws {
        let key = try PrivateKey.generate(.edDSA)
        let json = String(decoding: try JSONEncoder().encode(key.publicKey.jwk(kid: nil)), as: UTF8.self)
        XCTAssertFalse(json.contains("kid"), json)
        XCTAssertFalse(json.contains("null"), json)
    }

    func testKeyOfTheWrongTypeIsRejected() throws {
        let ec = try PrivateKey.generate(.es256)
        let rsa = try PrivateKey.generate(.rs256)
        let ed = try PrivateKey.generate(.edDSA)
        assertThrows(try PrivateKey(pem: ec.pkcs8PEM(), algorithm: .rs256), containing: "RS256 needs an RSA key, got an EC key")
        assertThrows(try PrivateKey(pem: rsa.pkcs8PEM(), algorithm: .es256), containing: "ES256 needs an EC P-256 key, got an RSA key")
        assertThrows(try PrivateKey(pem: ed.pkcs8PEM(), algorithm: .es256), containing: "got an Ed25519 key")
        assertThrows(try PrivateKey(pem: ec.pkcs8PEM(), algorithm: .edDSA), containing: "EdDSA needs an Ed25519 key")
        assertThrows(try PublicKey(pem: ec.publicKey.spkiPEM(), algorithm: .rs256), containing: "RS256 needs an RSA key")
        assertThrows(try PublicKey(pem: rsa.publicKey.spkiPEM(), algorithm: .edDSA), containing: "EdDSA needs an Ed25519 key")
        assertThrows(try PrivateKey(pem: JOSEFixtures.ed448PEM, algorithm: .edDSA), containing: "got an Ed448 key")
    }

    func testRSAKeysBelow2048BitsAreRejected() {
        assertThrows(try PrivateKey(pem: JOSEFixtures.rsa1024PEM, algorithm: .rs256), containing: "at least 2048 bits, got 1024")
        // The same limit applies to keys arriving as JWKs.
        let modulus = [UInt8(0xc1)] + [UInt8](repeating: 0x55, count: 126) + [0x01]
        assertThrows(try PublicKey(jwk: JWK(kty: "RSA", n: Base64URL.encode(modulus), e: "AQAB")), containing: "at least 2048 bits")
    }

    func testCurvesOtherThanP256AreRejected() {
        assertThrows(try PrivateKey(pem: JOSEFixtures.p384PEM, algorithm: .es256), containing: "P-256 curve, got curve secp384r1")
        assertThrows(try PublicKey(pem: JOSEFixtures.p384PublicPEM, algorithm: .es256), containing: "P-256 curve")
        assertThrows(try PublicKey(jwk: JWK(kty: "EC", crv: "P-384", x: JOSEVectors.ecX, y: JOSEVectors.ecY)), containing: "P-256")
    }

    func testGarbagePEMIsRejectedWithoutCrashing() throws {
        let real = try PrivateKey.generate(.es256).pkcs8PEM()
        let inputs = [
            "",
            "garbage",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\n!!!!not base64!!!!\n-----END PRIVATE KEY-----\n",
            String(real.prefix(real.count / 2)),
            real.replacingOccurrences(of: "A", with: "B"),
            String(decoding: (0..<512).map { _ in UInt8.random(in: 0...255) }, as: UTF8.self),
            JOSEFixtures.p384PublicPEM,  // a public key is not a private key
        ]
        for (index, input) in inputs.enumerated() {
            for algorithm in JWSAlgorithm.allCases {
                XCTAssertThrowsError(try PrivateKey(pem: input, algorithm: algorithm), "input \(index)")
                XCTAssertThrowsError(try PublicKey(pem: input, algorithm: algorithm), "input \(index)")
            }
        }
        XCTAssertThrowsError(try PublicKey(pem: real, algorithm: .es256), "a private key PEM is not SPKI")
    }

    func testEncryptedPEMFailsInsteadOfPrompting() {
        // With OpenSSL's default callback this would block reading a passphrase from the terminal.
        assertThrows(try PrivateKey(pem: JOSEFixtures.encryptedPEM, algorithm: .es256), containing: "not a PEM private key")
    }

    func testErrorsNeverContainTheKeyText() {
        let marker = "SECRETKEYMATERIALSECRETKEYMATERIAL"
        let pem = "-----BEGIN PRIVATE KEY-----\n\(marker)\n-----END PRIVATE KEY-----\n"
        do {
            _ = try PrivateKey(pem: pem, algorithm: .rs256)
            XCTFail("garbage accepted")
        } catch {
            XCTAssertFalse("\(error)".contains(marker), "\(error)")
            XCTAssertFalse("\(error)".contains("SECRET"), "\(error)")
        }
    }

    func testInvalidJWKsAreRejected() throws {
        let x = JOSEVectors.ecX
        let y = JOSEVectors.ecY
        // Flipping a bit of y moves the point off the curve.
        var badY = JOSEVectors.b64u(y)
        badY[31] ^= 0x01
        assertThrows(try PublicKey(jwk: JWK(kty: "EC", crv: "P-256", x: x, y: Base64URL.encode(badY))), containing: "not on curve")
        assertThrows(try PublicKey(jwk: JWK(kty: "EC", crv: "P-256", x: x)), containing: "x and y")
        assertThrows(try PublicKey(jwk: JWK(kty: "EC", crv: "P-256", x: String(x.dropLast(2)), y: y)), containing: "32-byte")
        assertThrows(try PublicKey(jwk: JWK(kty: "EC", crv: "P-256", x: x + "=", y: y)), containing: "base64url")
        assertThrows(try PublicKey(jwk: JWK(kty: "EC", crv: "P-256", x: x, y: y, alg: "RS256")), containing: "cannot be used with alg")
        assertThrows(try PublicKey(jwk: JWK(kty: "EC", crv: "P-256", x: x, y: y, use: "enc")), containing: "not a signature key")
        assertThrows(try PublicKey(jwk: JWK(kty: "oct")), containing: "unsupported JWK key type")
        assertThrows(try PublicKey(jwk: JWK(kty: "RSA", n: JOSEVectors.rsaN)), containing: "lacks n or e")
        assertThrows(try PublicKey(jwk: JWK(kty: "RSA", n: JOSEVectors.rsaN, e: "AQ")), containing: "odd and greater than 1")
        assertThrows(try PublicKey(jwk: JWK(kty: "RSA", n: JOSEVectors.rsaN, e: "AQAA")), containing: "odd and greater than 1")
        XCTAssertNoThrow(try PublicKey(jwk: JWK(kty: "RSA", n: JOSEVectors.rsaN, e: "Aw")))
        assertThrows(try PublicKey(jwk: JWK(kty: "OKP", crv: "Ed448", x: JOSEVectors.edX)), containing: "Ed25519")
        assertThrows(try PublicKey(jwk: JWK(kty: "OKP", crv: "Ed25519", x: "AAAA")), containing: "32-byte")
        // The all-zero point is not on the curve either.
        let zero = Base64URL.encode([UInt8](repeating: 0, count: 32))
        XCTAssertThrowsError(try PublicKey(jwk: JWK(kty: "EC", crv: "P-256", x: zero, y: zero)))
        // A valid point is still accepted after all that.
        XCTAssertNoThrow(try PublicKey(jwk: JWK(kty: "EC", crv: "P-256", x: x, y: y, alg: "ES256", use: "sig")))
    }

    func testPublicKeyIsDerivedOnceAndKeysAreIndependent() throws {
        let key = try PrivateKey.generate(.es256)
        XCTAssertTrue(key.publicKey === key.publicKey)
        let other = try PrivateKey.generate(.es256)
        XCTAssertNotEqual(key.publicKey.thumbprint, other.publicKey.thumbprint)
        let message = Array("independent".utf8)
        XCTAssertFalse(other.publicKey.verify(signature: try key.sign(message), message: message))
    }
}
