import BrokerCrypto
import BrokerValidator
import Foundation
import XCTest

/// RFC 9864's `Ed25519` beside RFC 8037's `EdDSA` at a gateway: both accepted, each only
/// under a key the JWKS publishes for that very name, though the key material is the same kind.
final class Ed25519NameTests: XCTestCase, VerifiedTokenTesting {
    let clock = ManualWallClock(Date(timeIntervalSince1970: 1_800_000_000))
    let leeway = 30
    var checks: AccessTokenChecks { AccessTokenChecks(issuer: TokenFactory.issuer, leeway: leeway) }

    /// One Ed25519 key pair, loaded under each name: a signature by one is a valid signature by
    /// the other, so only the `alg` rule can tell their tokens apart.
    static let pem = try! PrivateKey.generate(.ed25519).pkcs8PEM()
    static let asEd25519 = try! PrivateKey(pem: pem, algorithm: .ed25519)
    static let asEdDSA = try! PrivateKey(pem: pem, algorithm: .edDSA)

    func testAGatewayAcceptsEd25519TokensFromAJWKSOfEd25519Keys() async throws {
        let document = JWKSDocuments.document(TestKeys.ed25519, TestKeys.es256)
        let published = try XCTUnwrap(
            (try JSONSerialization.jsonObject(with: Data(document)) as? [String: [[String: String]]])?["keys"]?.first)
        XCTAssertEqual(published["alg"], "Ed25519")
        XCTAssertEqual(published["kty"], "OKP")
        XCTAssertEqual(published["crv"], "Ed25519")

        let validator = makeValidator(keys: JWKSCache(source: FakeJWKSSource(document: document), clock: clock))
        let token = try factory.good(TestKeys.ed25519)
        XCTAssertEqual(try CompactJWS.parse(token).algorithmName, "Ed25519")
        let result = await validator.validate(token, cluster: "cluster1")
        XCTAssertEqual(try result.get().account, "alice")
        XCTAssertEqual(try result.get().roles, ["member", "owner"])
    }

    /// Both names side by side, as in a ring switching from one to the other: each token is
    /// accepted under its own key.
    func testAJWKSWithBothNamesAcceptsBoth() async throws {
        let document = JWKSDocuments.document(TestKeys.edDSA, TestKeys.ed25519)
        let validator = makeValidator(keys: JWKSCache(source: FakeJWKSSource(document: document), clock: clock))
        for key in [TestKeys.edDSA, TestKeys.ed25519] {
            let result = await validator.validate(try factory.good(key), cluster: "cluster1")
            XCTAssertNil(result.refusal, "\(key.algorithm)")
        }
    }

    /// The key published as `EdDSA` refuses a validly signed `Ed25519` token under its kid, and
    /// the reverse: the token never chooses the name it is checked under.
    func testNeitherNameVerifiesUnderAKeyPublishedForTheOther() async throws {
        let edDSADocument = JWKSDocuments.document(Self.asEdDSA)
        let ed25519Document = JWKSDocuments.document(Self.asEd25519)
        let kid = TestKeys.kid(Self.asEdDSA)
        XCTAssertEqual(kid, TestKeys.kid(Self.asEd25519), "one key, one thumbprint")
        let crossings: [(document: [UInt8], signer: PrivateKey, alg: String)] = [
            (edDSADocument, Self.asEd25519, "Ed25519"), (ed25519Document, Self.asEdDSA, "EdDSA"),
        ]
        for (document, signer, alg) in crossings {
            let token = try factory.good(signer)
            XCTAssertEqual(try CompactJWS.parse(token).algorithmName, alg)
            XCTAssertEqual(try CompactJWS.parse(token).keyID, kid)

            let set = try JWKSKeySet(document: document, maximumSize: 1 << 20)
            XCTAssertThrowsError(try checks.verify(token, audience: "cluster1", now: clock.now()) { set.key(for: $0) }) { error in
                XCTAssertEqual(error as? TokenRejection, .algorithmMismatch, alg)
            }
            let validator = makeValidator(keys: JWKSCache(source: FakeJWKSSource(document: document), clock: clock))
            let result = await validator.validate(token, cluster: "cluster1")
            XCTAssertEqual(result.refusal, .invalidToken(.algorithmMismatch), alg)
            XCTAssertEqual(result.refusal?.httpStatus, 401)
        }
    }

    /// A token verified (and cached) under an `EdDSA` key is not honoured once the JWKS
    /// publishes that key material as `Ed25519` under the same kid: it is another key to the
    /// cache, as to a fresh check.
    func testACachedEdDSATokenDoesNotSurviveItsKeyRenamedEd25519() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(Self.asEdDSA))
        let keys = gatewayKeys(source)
        let validator = makeValidator(keys: keys)
        let token = try factory.good(Self.asEdDSA)
        let first = await validator.validate(token, cluster: "cluster1")
        XCTAssertNil(first.refusal)

        source.answer(FakeJWKSSource.serving(JWKSDocuments.document(Self.asEd25519), etag: "\"v2\""))
        await keys.refresh()
        let result = await validator.validate(token, cluster: "cluster1")
        XCTAssertEqual(result.refusal, .invalidToken(.algorithmMismatch))
        XCTAssertEqual(validator.verifiedTokens.statistics.dropped, 1)
    }

    /// The JWKS rule for a key without `alg` is the same for OKP as for RSA and EC: skipped,
    /// never guessed, though both Ed25519 names would fit it. A JWK naming a key family it is
    /// not is skipped too.
    func testJWKSEntriesWithoutAlgOrOfAnotherTypeAreSkipped() throws {
        var noAlg = JWKSDocuments.jwk(TestKeys.ed25519, kid: "okp-no-alg")
        noAlg["alg"] = nil
        var ecNamedEd25519 = JWKSDocuments.jwk(TestKeys.es256, kid: "ec-as-ed25519")
        ecNamedEd25519["alg"] = "Ed25519"
        var okpNamedES256 = JWKSDocuments.jwk(TestKeys.ed25519, kid: "okp-as-es256")
        okpNamedES256["alg"] = "ES256"
        var ed448 = JWKSDocuments.jwk(TestKeys.ed25519, kid: "ed448")
        ed448["alg"] = "Ed448"
        let document = JWKSDocuments.document([
            noAlg, ecNamedEd25519, okpNamedES256, ed448, JWKSDocuments.jwk(TestKeys.ed25519),
        ])
        let set = try JWKSKeySet(document: document, maximumSize: 1 << 20)
        XCTAssertEqual(Array(set.keys.keys), [TestKeys.kid(TestKeys.ed25519)])
        XCTAssertEqual(set.key(for: TestKeys.kid(TestKeys.ed25519))?.algorithm, .ed25519)
        let reasons = Dictionary(uniqueKeysWithValues: set.skipped.map { ($0.kid ?? "-", $0.reason) })
        XCTAssertEqual(reasons["okp-no-alg"], "no alg")
        XCTAssertEqual(reasons["ed448"], #"unsupported alg "Ed448""#)
        XCTAssertEqual(reasons["ec-as-ed25519"].map { $0.contains(#"cannot be used with alg "Ed25519""#) }, true, "\(reasons)")
        XCTAssertEqual(reasons["okp-as-es256"].map { $0.contains(#"cannot be used with alg "ES256""#) }, true, "\(reasons)")
    }
}
