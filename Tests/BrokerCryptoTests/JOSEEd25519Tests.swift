import BrokerCrypto
import Foundation
import XCTest

/// RFC 9864's fully-specified `Ed25519`: the keys and signatures of RFC 8037's `EdDSA` under
/// another `alg`, which must never stand in for the old name, nor the old for the new.
final class JOSEEd25519Tests: XCTestCase {
    private let claims = Array(#"{"sub":"alice","aud":["cluster-a"]}"#.utf8)

    func testAnEd25519TokenNamesEd25519InItsHeaderAndItsJWKAndVerifies() throws {
        let key = try PrivateKey.generate(.ed25519)
        XCTAssertEqual(key.algorithm, .ed25519)
        XCTAssertEqual(key.signatureSize, 64)
        let token = try JWSSigner(key: key, kid: "k").sign(payload: claims)
        let header = String(decoding: try XCTUnwrap(Base64URL.decode(token.split(separator: ".")[0])), as: UTF8.self)
        XCTAssertEqual(header, #"{"alg":"Ed25519","typ":"at+jwt","kid":"k"}"#)
        let jws = try CompactJWS.parse(token)
        XCTAssertEqual(jws.algorithm, .ed25519)
        XCTAssertTrue(jws.verify(with: key.publicKey))
        XCTAssertNoThrow(try jws.checkSignature(with: key.publicKey))

        let jwk = key.publicKey.jwk(kid: "k")
        XCTAssertEqual(jwk, JWK(kty: "OKP", crv: "Ed25519", x: jwk.x, kid: "k", alg: "Ed25519", use: "sig"))
        let imported = try PublicKey(jwk: JSONDecoder().decode(JWK.self, from: JSONEncoder().encode(jwk)))
        XCTAssertEqual(imported.algorithm, .ed25519)
        XCTAssertTrue(jws.verify(with: imported))
    }

    /// One Ed25519 key loaded under both names: a signature that is valid for the key is still
    /// refused when the header names the algorithm the key was not published for.
    func testNeitherNameVerifiesATokenOfTheOther() throws {
        let pem = try PrivateKey.generate(.ed25519).pkcs8PEM()
        let asEd25519 = try PrivateKey(pem: pem, algorithm: .ed25519)
        let asEdDSA = try PrivateKey(pem: pem, algorithm: .edDSA)
        XCTAssertEqual(asEd25519.publicKey.thumbprint, asEdDSA.publicKey.thumbprint, "alg is not in the thumbprint")

        let ed25519Token = try CompactJWS.parse(try JWSSigner(key: asEd25519, kid: "k").sign(payload: claims))
        let edDSAToken = try CompactJWS.parse(try JWSSigner(key: asEdDSA, kid: "k").sign(payload: claims))
        // The signatures are sound for the key: only the names differ.
        for token in [ed25519Token, edDSAToken] {
            XCTAssertTrue(token.signingInput.withUnsafeBytes { asEdDSA.publicKey.verify(signature: token.signature, message: $0) })
        }
        XCTAssertTrue(ed25519Token.verify(with: asEd25519.publicKey))
        XCTAssertTrue(edDSAToken.verify(with: asEdDSA.publicKey))
        XCTAssertFalse(ed25519Token.verify(with: asEdDSA.publicKey), "an EdDSA key verified an Ed25519 token")
        XCTAssertFalse(edDSAToken.verify(with: asEd25519.publicKey), "an Ed25519 key verified an EdDSA token")
        XCTAssertThrowsError(try ed25519Token.checkSignature(with: asEdDSA.publicKey)) { error in
            XCTAssertEqual(error as? JWSError, .algorithmMismatch(expected: .edDSA, found: "Ed25519"))
        }
        XCTAssertThrowsError(try edDSAToken.checkSignature(with: asEd25519.publicKey)) { error in
            XCTAssertEqual(error as? JWSError, .algorithmMismatch(expected: .ed25519, found: "EdDSA"))
        }
        // The same through JWKs, as a verifier gets them.
        let publishedEdDSA = try PublicKey(jwk: asEdDSA.publicKey.jwk(kid: "k"))
        let publishedEd25519 = try PublicKey(jwk: asEd25519.publicKey.jwk(kid: "k"))
        XCTAssertFalse(ed25519Token.verify(with: publishedEdDSA))
        XCTAssertFalse(edDSAToken.verify(with: publishedEd25519))
        // Nor does any other key family's name get through with an Ed25519 signature.
        for alg in ["ES256", "RS256", "Ed448", "ed25519", "ED25519"] {
            let header = Base64URL.encode(Array(#"{"alg":"\#(alg)","kid":"k"}"#.utf8))
            let input = "\(header).\(Base64URL.encode(claims))"
            let relabelled = try CompactJWS.parse("\(input).\(Base64URL.encode(try asEd25519.sign(Array(input.utf8))))")
            XCTAssertFalse(relabelled.verify(with: asEd25519.publicKey), alg)
            XCTAssertFalse(relabelled.verify(with: asEdDSA.publicKey), alg)
        }
    }

    /// A JWK's `alg` must fit its `kty`: `Ed25519` only on OKP, and an OKP key only for one of
    /// the two Ed25519 names. Without `alg`, an OKP JWK means RFC 8037's `EdDSA`.
    func testJWKAlgAndKeyTypeMustAgree() throws {
        let ed = try PrivateKey.generate(.ed25519).publicKey.jwk(kid: nil)
        let ec = try PrivateKey.generate(.es256).publicKey.jwk(kid: nil)
        let rsa = try PrivateKey.generate(.rs256).publicKey.jwk(kid: nil)
        func with(_ jwk: JWK, alg: String?) -> JWK { var jwk = jwk; jwk.alg = alg; return jwk }

        XCTAssertEqual(try PublicKey(jwk: with(ed, alg: "Ed25519")).algorithm, .ed25519)
        XCTAssertEqual(try PublicKey(jwk: with(ed, alg: "EdDSA")).algorithm, .edDSA)
        XCTAssertEqual(try PublicKey(jwk: with(ed, alg: nil)).algorithm, .edDSA)
        for alg in ["ES256", "RS256", "Ed448", "ed25519", "EDDSA"] {
            assertThrows(try PublicKey(jwk: with(ed, alg: alg)), containing: "cannot be used with alg")
        }
        assertThrows(try PublicKey(jwk: with(ec, alg: "Ed25519")), containing: "JWK of type EC cannot be used with alg \"Ed25519\"")
        assertThrows(try PublicKey(jwk: with(rsa, alg: "Ed25519")), containing: "JWK of type RSA cannot be used with alg \"Ed25519\"")
        assertThrows(try PublicKey(jwk: with(ec, alg: "EdDSA")), containing: "cannot be used with alg")
        // The curve is checked under the new name as under the old.
        var ed448 = with(ed, alg: "Ed25519")
        ed448.crv = "Ed448"
        assertThrows(try PublicKey(jwk: ed448), containing: "OKP JWK must use curve Ed25519")
    }

    func testAKeyOfAnotherTypeIsRefusedForEd25519() throws {
        let ec = try PrivateKey.generate(.es256)
        assertThrows(try PrivateKey(pem: ec.pkcs8PEM(), algorithm: .ed25519), containing: "Ed25519 needs an Ed25519 key, got an EC key")
        assertThrows(try PublicKey(pem: ec.publicKey.spkiPEM(), algorithm: .ed25519), containing: "Ed25519 needs an Ed25519 key")
        assertThrows(try PrivateKey(pem: JOSEFixtures.ed448PEM, algorithm: .ed25519), containing: "got an Ed448 key")
    }

    // MARK: RFC 8037 A.1's key under the RFC 9864 name

    /// RFC 8037 A.4 signs `{"alg":"EdDSA"}`; the same key and payload under `{"alg":"Ed25519"}`.
    /// Ed25519 is deterministic, so the signature is fixed: computed independently with
    /// `openssl pkeyutl -sign -rawin` and with Python's `cryptography`, which agree.
    static let ed25519Token =
        "eyJhbGciOiJFZDI1NTE5In0.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
        + "UxhIYLHGg39NVCLpQAVD_UcfOmnGSCzLFZoXYkLiIbFccmOb_qObsgjzLKsfJw-4NlccUgvYrEHrRbNV0HcZAQ"

    func testRFC8037KeySignsAnEd25519HeaderExactly() throws {
        let key = try PrivateKey(pem: JOSEVectors.edPKCS8PEM, algorithm: .ed25519)
        XCTAssertEqual(key.publicKey.jwk(kid: nil).x, JOSEVectors.edX)
        XCTAssertEqual(key.publicKey.thumbprint, JOSEVectors.edThumbprint, "RFC 8037 A.3, whatever the name")
        let parts = Self.ed25519Token.split(separator: ".")
        XCTAssertEqual(String(decoding: try XCTUnwrap(Base64URL.decode(parts[0])), as: UTF8.self), #"{"alg":"Ed25519"}"#)
        XCTAssertEqual(Base64URL.encode(try key.sign(Array("\(parts[0]).\(parts[1])".utf8))), String(parts[2]))
    }

    func testRFC8037PublicKeyVerifiesTheEd25519TokenOnlyUnderItsName() throws {
        let jws = try CompactJWS.parse(Self.ed25519Token)
        XCTAssertEqual(jws.algorithm, .ed25519)
        let asEd25519 = try PublicKey(jwk: JWK(kty: "OKP", crv: "Ed25519", x: JOSEVectors.edX, alg: "Ed25519"))
        let asEdDSA = try PublicKey(jwk: JWK(kty: "OKP", crv: "Ed25519", x: JOSEVectors.edX, alg: "EdDSA"))
        let withoutAlg = try PublicKey(jwk: JWK(kty: "OKP", crv: "Ed25519", x: JOSEVectors.edX))
        XCTAssertTrue(jws.verify(with: asEd25519))
        XCTAssertFalse(jws.verify(with: asEdDSA))
        XCTAssertFalse(jws.verify(with: withoutAlg), "an OKP JWK without alg is EdDSA")
        // And RFC 8037 A.5's own token the other way round.
        let rfcToken = try CompactJWS.parse(JOSEVectors.edDSAToken)
        XCTAssertTrue(rfcToken.verify(with: asEdDSA))
        XCTAssertTrue(rfcToken.verify(with: withoutAlg))
        XCTAssertFalse(rfcToken.verify(with: asEd25519))
    }
}
