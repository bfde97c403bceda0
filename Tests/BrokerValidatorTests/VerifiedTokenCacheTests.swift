import BrokerCrypto
import BrokerValidator
import Foundation
import XCTest

/// The gateway's cache of verified tokens: a hit gives the answer a full check would give at
/// the same moment (expiry, a withdrawn or replaced key, the audience), and the cache stays
/// within its size whatever it is sent.
final class VerifiedTokenCacheTests: XCTestCase, VerifiedTokenTesting {
    let clock = ManualWallClock(Date(timeIntervalSince1970: 1_800_000_000))
    let leeway = 30

    func makeValidator(_ source: FakeJWKSSource, capacity: Int = 100) -> GatewayValidator {
        makeValidator(keys: JWKSCache(source: source, clock: clock), capacity: capacity)
    }

    func testASecondPresentationIsAHitWithTheSameIdentity() async throws {
        let validator = makeValidator(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256, TestKeys.rs256)))
        for key in [TestKeys.es256, TestKeys.rs256] {
            let token = try factory.good(key)
            let miss = try await validator.validate(token, cluster: "cluster1").get()
            let hit = try await validator.validate(token, cluster: "cluster1").get()
            XCTAssertEqual(hit, miss)
        }
        let statistics = validator.verifiedTokens.statistics
        XCTAssertEqual(statistics.misses, 2)
        XCTAssertEqual(statistics.hits, 2)
        XCTAssertEqual(statistics.count, 2)
    }

    /// A cached token is refused from `exp` + leeway, as `AccessTokenChecks` refuses any token;
    /// and until then it is a hit.
    func testACachedTokenStopsBeingAcceptedAtItsExpiryPlusTheLeeway() async throws {
        let validator = makeValidator(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256)))
        let expiresAt = factory.now + 600
        let token = try factory.good { $0["exp"] = expiresAt }
        await assertAccepted(validator, token)

        clock.set(Date(timeIntervalSince1970: TimeInterval(expiresAt + Int64(leeway) - 1)))
        await assertAccepted(validator, token)
        XCTAssertEqual(validator.verifiedTokens.statistics.hits, 1, "accepted from the cache")

        clock.set(Date(timeIntervalSince1970: TimeInterval(expiresAt + Int64(leeway))))
        let expired = await validator.validate(token, cluster: "cluster1")
        XCTAssertEqual(expired.refusal, .invalidToken(.expired))
        XCTAssertEqual(validator.verifiedTokens.statistics.dropped, 1)
        XCTAssertEqual(validator.verifiedTokens.statistics.count, 0, "the expired token is not cached again")
    }

    /// `broker keys retire --now` drops a key from the JWKS: once the gateway's copy of the
    /// JWKS is renewed, the key's tokens are refused, cached or not, at the same moment; before
    /// that, both are accepted (docs/gateways.md).
    func testAWithdrawnKeysCachedTokenIsRefusedWhenTheJWKSRefreshDropsIt() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256, TestKeys.rs256))
        let keys = gatewayKeys(source)
        let cached = makeValidator(keys: keys)
        let uncached = makeValidator(keys: keys, capacity: 0)
        let token = try factory.good(TestKeys.es256)
        await assertAccepted(cached, token)
        await assertAccepted(cached, token)
        XCTAssertEqual(cached.verifiedTokens.statistics.hits, 1)

        source.answer(FakeJWKSSource.serving(JWKSDocuments.document(TestKeys.rs256), etag: "\"v2\""))
        // Long enough that both validators below meet the refetch still in flight.
        source.delay(.milliseconds(300))
        // Within the JWKS max-age (300 s) and on the request that starts the refetch, the old
        // copy still answers, for every token alike.
        for seconds in [299.0, 2.0] {
            clock.advance(by: seconds)
            let fromCache = await cached.validate(token, cluster: "cluster1")
            let fromKeys = await uncached.validate(token, cluster: "cluster1")
            XCTAssertNil(fromCache.refusal, "\(seconds)")
            XCTAssertNil(fromKeys.refusal, "\(seconds)")
        }
        await keys.refresh()
        XCTAssertNil(keys.freshKey(for: TestKeys.kid(TestKeys.es256)), "withdrawn")
        let fromCache = await cached.validate(token, cluster: "cluster1")
        let fromKeys = await uncached.validate(token, cluster: "cluster1")
        XCTAssertEqual(fromKeys.refusal, .invalidToken(.unknownKey))
        XCTAssertEqual(fromCache.refusal, .invalidToken(.unknownKey))
        XCTAssertEqual(cached.verifiedTokens.statistics.dropped, 1)
    }

    /// Another key published under the same `kid` (never done by the broker, but a JWKS is not
    /// to be trusted for that) must not inherit the tokens the old key verified.
    func testAKeyReplacedUnderTheSameKidStopsItsCachedTokens() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256))
        let keys = gatewayKeys(source)
        let validator = makeValidator(keys: keys)
        let token = try factory.good(TestKeys.es256)
        await assertAccepted(validator, token)

        let impostor = JWKSDocuments.jwk(TestKeys.attacker, kid: TestKeys.kid(TestKeys.es256))
        source.answer(FakeJWKSSource.serving(JWKSDocuments.document([impostor]), etag: "\"v2\""))
        await keys.refresh()
        let result = await validator.validate(token, cluster: "cluster1")
        XCTAssertEqual(result.refusal, .invalidToken(.badSignature))
        XCTAssertEqual(validator.verifiedTokens.statistics.dropped, 1)
    }

    /// The cache holds tokens of any audience: a hit is still refused at another cluster.
    func testTheAudienceIsCheckedOnAHit() async throws {
        let validator = makeValidator(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256)))
        let token = try factory.good()
        await assertAccepted(validator, token)
        let elsewhere = await validator.validate(token, cluster: "cluster2")
        XCTAssertEqual(elsewhere.refusal, .otherCluster)
        XCTAssertEqual(validator.verifiedTokens.statistics.hits, 1)
    }

    func testATokenWithOneByteChangedIsNotAHit() async throws {
        let validator = makeValidator(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256)))
        let token = try factory.good()
        await assertAccepted(validator, token)
        var bytes = Array(token.utf8)
        let middleOfSignature = bytes.count - 40
        bytes[middleOfSignature] = bytes[middleOfSignature] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let tampered = String(decoding: bytes, as: UTF8.self)
        let result = await validator.validate(tampered, cluster: "cluster1")
        XCTAssertEqual(result.refusal, .invalidToken(.badSignature))
        XCTAssertEqual(validator.verifiedTokens.statistics.hits, 0)
    }

    /// Anyone can send invalid tokens: they must neither take room nor push valid ones out.
    func testRefusedTokensAreNeverCachedAndEvictNothing() async throws {
        let validator = makeValidator(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256)), capacity: 2)
        let good = [try factory.good { $0["jti"] = "one" }, try factory.good { $0["jti"] = "two" }]
        for token in good { await assertAccepted(validator, token) }
        for index in 0..<20 {
            let forged = try factory.token(header: factory.header(), claims: factory.claims { $0["jti"] = "\(index)" }, key: TestKeys.attacker)
            let expired = try factory.good { $0["jti"] = "\(index)"; $0["exp"] = self.factory.now - 3600 }
            for token in [forged, expired] {
                guard case .invalidToken? = await validator.validate(token, cluster: "cluster1").refusal else {
                    return XCTFail("accepted")
                }
            }
        }
        XCTAssertEqual(validator.verifiedTokens.statistics.count, 2)
        for token in good { await assertAccepted(validator, token) }
        XCTAssertEqual(validator.verifiedTokens.statistics.hits, 2, "both good tokens are still cached")
    }

    /// Size 0: every token takes the full path, nothing is hashed or kept, and the answers
    /// are those of the rules.
    func testADisabledCacheBehavesAsBefore() async throws {
        let validator = makeValidator(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256)), capacity: 0)
        XCTAssertFalse(validator.verifiedTokens.isEnabled)
        let expiresAt = factory.now + 600
        let token = try factory.good { $0["exp"] = expiresAt }
        for _ in 0..<3 { await assertAccepted(validator, token) }
        let elsewhere = await validator.validate(token, cluster: "cluster2")
        XCTAssertEqual(elsewhere.refusal, .otherCluster)
        clock.set(Date(timeIntervalSince1970: TimeInterval(expiresAt + Int64(leeway))))
        let expired = await validator.validate(token, cluster: "cluster1")
        XCTAssertEqual(expired.refusal, .invalidToken(.expired))
        XCTAssertEqual(validator.verifiedTokens.statistics, VerifiedTokenCache.Statistics())
    }

    func assertAccepted(_ validator: GatewayValidator, _ token: String, file: StaticString = #filePath, line: UInt = #line) async {
        let result = await validator.validate(token, cluster: "cluster1")
        XCTAssertNil(result.refusal, file: file, line: line)
    }

    // MARK: - The cache itself

    func entry(_ name: String) -> VerifiedTokenCache.Entry {
        let claims = AccessTokenClaims(
            issuer: TokenFactory.issuer, subject: name, audience: ["cluster1"], organization: "org1", organizationRoles: ["member"],
            issuedAt: 0, notBefore: 0, expiresAt: 1, tokenID: name, authenticatedAt: 0, authenticationMethods: ["pwd"],
            identityProvider: "local", userID: 1, username: name)
        return .init(claims: claims, keyID: "k1", key: TestKeys.es256.publicKey)
    }

    /// Touch one, insert more: the touched one survives and the least recently used goes.
    func testAFullCacheEvictsTheLeastRecentlyUsedEntry() {
        let cache = VerifiedTokenCache(capacity: 3)
        let names = ["t0", "t1", "t2", "t3", "t4"]
        for name in names.prefix(3) { cache.insert(entry(name), for: TokenDigest(name)) }
        XCTAssertEqual(cache.entry(for: TokenDigest("t0")), entry("t0"))
        cache.insert(entry("t3"), for: TokenDigest("t3"))
        XCTAssertNil(cache.entry(for: TokenDigest("t1")), "the least recently used")
        XCTAssertEqual(cache.statistics.count, 3)
        cache.insert(entry("t4"), for: TokenDigest("t4"))
        XCTAssertNil(cache.entry(for: TokenDigest("t2")))
        for name in ["t0", "t3", "t4"] { XCTAssertEqual(cache.entry(for: TokenDigest(name)), entry(name), name) }
        // A removed entry's slot is reused, and the order still holds.
        cache.remove(TokenDigest("t3"))
        cache.insert(entry("t1"), for: TokenDigest("t1"))
        cache.insert(entry("t2"), for: TokenDigest("t2"))
        XCTAssertEqual(cache.statistics.count, 3)
        XCTAssertNil(cache.entry(for: TokenDigest("t0")), "t0 was the least recently used after t4's lookup")
        for name in ["t4", "t1", "t2"] { XCTAssertEqual(cache.entry(for: TokenDigest(name)), entry(name), name) }
    }

    /// A large cache is split into shards, each with its own lock: together they never hold
    /// more than the capacity, and concurrent use keeps that bound.
    func testAShardedCacheHoldsAtMostItsCapacity() async {
        let cache = VerifiedTokenCache(capacity: 5000)
        let sample = entry("x")
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    for index in 0..<5000 {
                        let digest = TokenDigest("\(worker)-\(index)")
                        cache.insert(sample, for: digest)
                        _ = cache.entry(for: TokenDigest("\(worker)-\(index / 2)"))
                    }
                }
            }
        }
        XCTAssertEqual(cache.statistics.count, 5000)
        let newest = (0..<100).map { TokenDigest("newest-\($0)") }
        for digest in newest { cache.insert(sample, for: digest) }
        XCTAssertEqual(cache.statistics.count, 5000)
        for digest in newest { XCTAssertNotNil(cache.entry(for: digest), "the most recently used survive") }
    }
}
