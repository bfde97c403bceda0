import BrokerCrypto
import BrokerValidator
import Foundation
import XCTest

/// `GatewayValidator.validateIfCached`, the decision an HTTP server makes on its event loop: it
/// answers only what `validate` would answer at the same moment, and only when no key lookup
/// must wait; everything else it leaves to `validate`, without counting or dropping anything,
/// so the cache's rules and statistics stay those of `validate` alone.
final class CachedDecisionTests: XCTestCase, VerifiedTokenTesting {
    let clock = ManualWallClock(Date(timeIntervalSince1970: 1_800_000_000))
    let leeway = 30

    func testAHitIsAnsweredAtOnceWithTheAnswerOfTheFullCheck() async throws {
        let validator = makeValidator(keys: gatewayKeys(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256, TestKeys.rs256))))
        for key in [TestKeys.es256, TestKeys.rs256] {
            let token = try factory.good(key)
            XCTAssertNil(validator.validateIfCached(token, cluster: "cluster1"), "not verified yet")
            let verified = try await validator.validate(token, cluster: "cluster1").get()
            XCTAssertEqual(try validator.validateIfCached(token, cluster: "cluster1")?.get(), verified)
            XCTAssertEqual(validator.validateIfCached(token, cluster: "cluster2")?.refusal, .otherCluster, "the audience, on a hit")
        }
        let statistics = validator.verifiedTokens.statistics
        XCTAssertEqual(statistics.misses, 2, "only validate's lookups: a nil counted nothing")
        XCTAssertEqual(statistics.hits, 4)
        for missing in [nil, ""] as [String?] {
            XCTAssertEqual(validator.validateIfCached(missing, cluster: "cluster1")?.refusal, .missingToken)
        }
    }

    /// From `exp` + leeway the entry is left to `validate`, which refuses and drops it.
    func testAnExpiredEntryIsLeftToTheFullCheck() async throws {
        let keys = gatewayKeys(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256)))
        let validator = makeValidator(keys: keys)
        let expiresAt = factory.now + 600
        let token = try factory.good { $0["exp"] = expiresAt }
        _ = await validator.validate(token, cluster: "cluster1")

        clock.set(Date(timeIntervalSince1970: TimeInterval(expiresAt + Int64(leeway) - 1)))
        await keys.refresh()  // past the JWKS max-age (300 s): fresh again, so that only the times decide
        XCTAssertNotNil(try validator.validateIfCached(token, cluster: "cluster1")?.get())
        clock.set(Date(timeIntervalSince1970: TimeInterval(expiresAt + Int64(leeway))))
        XCTAssertNil(validator.validateIfCached(token, cluster: "cluster1"))
        XCTAssertEqual(validator.verifiedTokens.statistics.dropped, 0, "dropped by validate, not here")
        let expired = await validator.validate(token, cluster: "cluster1")
        XCTAssertEqual(expired.refusal, .invalidToken(.expired))
        XCTAssertEqual(validator.verifiedTokens.statistics.dropped, 1)
    }

    /// A key set past its max-age needs a lookup that starts a refetch: left to `validate`,
    /// which answers from the held set meanwhile. Once the refetch withdraws the key, the
    /// token is refused, cached or not.
    func testAStaleKeySetOrAWithdrawnKeyIsLeftToTheFullCheck() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256, TestKeys.rs256))
        let keys = gatewayKeys(source)
        let validator = makeValidator(keys: keys)
        let token = try factory.good(TestKeys.es256)
        _ = await validator.validate(token, cluster: "cluster1")
        XCTAssertNotNil(validator.validateIfCached(token, cluster: "cluster1"))

        source.answer(FakeJWKSSource.serving(JWKSDocuments.document(TestKeys.rs256), etag: "\"v2\""))
        clock.advance(by: 301)
        XCTAssertNil(validator.validateIfCached(token, cluster: "cluster1"), "the key set is stale")
        let fromHeldSet = await validator.validate(token, cluster: "cluster1")
        XCTAssertNil(fromHeldSet.refusal, "answered from the held set while it is refetched")
        await keys.refresh()
        XCTAssertNil(validator.validateIfCached(token, cluster: "cluster1"), "the key is withdrawn")
        let withdrawn = await validator.validate(token, cluster: "cluster1")
        XCTAssertEqual(withdrawn.refusal, .invalidToken(.unknownKey))
    }

    /// Another key under the token's `kid` is not the key that verified it.
    func testAKeyReplacedUnderTheSameKidIsLeftToTheFullCheck() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256))
        let keys = gatewayKeys(source)
        let validator = makeValidator(keys: keys)
        let token = try factory.good(TestKeys.es256)
        _ = await validator.validate(token, cluster: "cluster1")
        let impostor = JWKSDocuments.jwk(TestKeys.attacker, kid: TestKeys.kid(TestKeys.es256))
        source.answer(FakeJWKSSource.serving(JWKSDocuments.document([impostor]), etag: "\"v2\""))
        await keys.refresh()
        XCTAssertNotNil(keys.freshKey(for: TestKeys.kid(TestKeys.es256)))
        XCTAssertNil(validator.validateIfCached(token, cluster: "cluster1"))
        let result = await validator.validate(token, cluster: "cluster1")
        XCTAssertEqual(result.refusal, .invalidToken(.badSignature))
    }

    func testADisabledCacheAnswersOnlyAMissingToken() async throws {
        let validator = makeValidator(keys: gatewayKeys(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256))), capacity: 0)
        let token = try factory.good()
        _ = await validator.validate(token, cluster: "cluster1")
        XCTAssertNil(validator.validateIfCached(token, cluster: "cluster1"))
        XCTAssertEqual(validator.validateIfCached(nil, cluster: "cluster1")?.refusal, .missingToken)
    }

    /// The cache's side: an entry the condition refuses is neither counted nor moved, so a
    /// later `entry(for:)` finds the cache as it would have without the look.
    func testAnUnusableEntryIsNeitherCountedNorMadeRecent() {
        let cache = VerifiedTokenCache(capacity: 2)
        let claims = AccessTokenClaims(
            issuer: TokenFactory.issuer, subject: "alice", audience: ["cluster1"], organization: "org1", organizationRoles: ["member"],
            issuedAt: 0, notBefore: 0, expiresAt: 1, tokenID: "j", authenticatedAt: 0, authenticationMethods: ["pwd"],
            identityProvider: "local", userID: 1, username: "alice")
        let entry = VerifiedTokenCache.Entry(claims: claims, keyID: "k1", key: TestKeys.es256.publicKey)
        cache.insert(entry, for: TokenDigest("old"))
        cache.insert(entry, for: TokenDigest("new"))
        XCTAssertNil(cache.entry(for: TokenDigest("old")) { _ in false })
        XCTAssertNil(cache.entry(for: TokenDigest("absent")) { _ in true })
        XCTAssertEqual(cache.statistics, VerifiedTokenCache.Statistics.with(count: 2))
        cache.insert(entry, for: TokenDigest("newest"))
        XCTAssertNil(cache.entry(for: TokenDigest("old")), "still the least recently used: evicted")
        XCTAssertEqual(cache.entry(for: TokenDigest("new")) { _ in true }, entry)
        XCTAssertEqual(cache.statistics.hits, 1)
        XCTAssertEqual(cache.statistics.misses, 1)
    }
}

extension VerifiedTokenCache.Statistics {
    static func with(count: Int) -> Self {
        var statistics = Self()
        statistics.count = count
        return statistics
    }
}
