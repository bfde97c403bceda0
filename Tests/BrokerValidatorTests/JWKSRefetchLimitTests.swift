import BrokerCrypto
import BrokerValidator
import Foundation
import XCTest

/// How often an unknown `kid` may make the cache ask the broker: per kid, under a global ceiling,
/// so that an emergency rotation's new key is fetched at once whatever other kids came first.
final class JWKSRefetchLimitTests: XCTestCase {
    var clock: ManualWallClock!

    override func setUp() {
        clock = ManualWallClock(Date(timeIntervalSince1970: 1_800_000_000))
    }

    func makeCache(_ source: FakeJWKSSource) -> JWKSCache {
        let configuration = JWKSCacheConfiguration(
            minimumMaxAge: 10, maximumMaxAge: 3600, defaultMaxAge: 300, refetchInterval: 30, maximumDocumentSize: 64 * 1024,
            serveStaleWhileRevalidating: false, maximumUnknownKeyFetches: 4)
        return JWKSCache(source: source, configuration: configuration, clock: clock)
    }

    /// One key published under several names (a kid is only a name to the cache).
    func serving(_ kids: String..., maxAge: Int = 300) -> @Sendable (String?) throws -> JWKSFetchResult {
        let document = JWKSDocuments.document(kids.map { JWKSDocuments.jwk(TestKeys.es256, kid: $0) })
        return FakeJWKSSource.serving(document, etag: "\"\(kids.joined(separator: "+"))\"", maxAge: maxAge)
    }

    /// The issue's sequence: the cache has just fetched (here: a renewal that dropped the
    /// withdrawn key A), tokens of A keep arriving, and the broker then makes a key active that
    /// the cache has never seen (a forced rotation promotes a young `next` key). Its tokens are
    /// accepted at once, with one fetch, instead of after the rest of a 30 s interval.
    func testAnEmergencyRotationsNewKeyIsFetchedAtOnceWhateverCameBefore() async throws {
        let source = FakeJWKSSource(serving("A", "B", maxAge: 30))
        let cache = makeCache(source)
        _ = await cache.key(for: "B")
        XCTAssertEqual(source.fetchCount, 1)

        // A is withdrawn (`broker keys retire A --now`); the next renewal drops it.
        source.answer(serving("B", maxAge: 30))
        clock.advance(by: 30)
        _ = await cache.key(for: "B")
        XCTAssertEqual(source.fetchCount, 2)
        clock.advance(by: 1)
        for _ in 0..<10 {
            let withdrawn = await cache.key(for: "A")
            XCTAssertNil(withdrawn)
        }
        XCTAssertEqual(source.fetchCount, 2, "a kid the last document withdrew causes no fetch")

        // The forced rotation: C, published a moment ago, signs from now on.
        source.answer(serving("B", "C", maxAge: 30))
        clock.advance(by: 1)
        let fresh = await cache.key(for: "C")
        XCTAssertNotNil(fresh, "the new key's first token is accepted")
        XCTAssertEqual(source.fetchCount, 3, "with one fetch")

        // Later, once A's wait is over, a token of A does cause a fetch (and is still refused);
        // a key published right after it is still fetched at once.
        clock.advance(by: 30)
        let withdrawnAgain = await cache.key(for: "A")
        XCTAssertNil(withdrawnAgain)
        XCTAssertEqual(source.fetchCount, 4)
        source.answer(serving("B", "C", "D", maxAge: 30))
        let next = await cache.key(for: "D")
        XCTAssertNotNil(next, "the withdrawn kid's fetch did not use up the new kid's")
        XCTAssertEqual(source.fetchCount, 5)
    }

    func testAnAbsentKidWaitsTheIntervalButOtherKidsDoNot() async throws {
        let source = FakeJWKSSource(serving("A"))
        let cache = makeCache(source)
        _ = await cache.key(for: "A")
        let first = await cache.key(for: "X")
        XCTAssertNil(first)
        XCTAssertEqual(source.fetchCount, 2, "an unknown kid fetches at once, even right after another fetch")
        for _ in 0..<5 {
            clock.advance(by: 5)
            let again = await cache.key(for: "X")
            XCTAssertNil(again)
        }
        XCTAssertEqual(source.fetchCount, 2, "X is not asked for again within 30 s")
        let other = await cache.key(for: "Y")
        XCTAssertNil(other)
        XCTAssertEqual(source.fetchCount, 3, "another kid has a wait of its own")

        // X is published; it is found once its wait is over.
        source.answer(serving("A", "X"))
        clock.advance(by: 4)
        let stillWaiting = await cache.key(for: "X")
        XCTAssertNil(stillWaiting)
        XCTAssertEqual(source.fetchCount, 3)
        clock.advance(by: 1)
        let found = await cache.key(for: "X")
        XCTAssertNotNil(found)
        XCTAssertEqual(source.fetchCount, 4)
    }

    func testAFloodOfInventedKidsMeetsTheGlobalCeiling() async throws {
        let source = FakeJWKSSource(serving("A"))
        let cache = makeCache(source)
        _ = await cache.key(for: "A")
        XCTAssertEqual(source.fetchCount, 1)
        for index in 0..<200 {
            let key = await cache.key(for: "invented-\(index)")
            XCTAssertNil(key)
        }
        XCTAssertEqual(source.fetchCount, 1 + 4, "at most 4 fetches for unknown kids per 30 s")
        // Known keys are unaffected.
        let known = await cache.key(for: "A")
        XCTAssertNotNil(known)

        // The window slides: 30 s after the first of the 4, the ceiling has room again, and
        // again only for 4.
        clock.advance(by: 29)
        _ = await cache.key(for: "invented-late")
        XCTAssertEqual(source.fetchCount, 5)
        clock.advance(by: 1)
        for index in 0..<200 {
            _ = await cache.key(for: "invented-second-\(index)")
        }
        XCTAssertEqual(source.fetchCount, 9)

        // Concurrent misses share the fetch in flight and count once.
        clock.advance(by: 30)
        source.delay(.milliseconds(100))
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<50 {
                group.addTask { _ = await cache.key(for: "concurrent-\(index)") }
            }
        }
        XCTAssertLessThanOrEqual(source.fetchCount, 9 + 4)
    }

    func testAFailedFetchHoldsBackUnknownKidsForTheInterval() async throws {
        let source = FakeJWKSSource(serving("A"))
        let cache = makeCache(source)
        _ = await cache.key(for: "A")
        source.fail()
        _ = await cache.key(for: "X")
        XCTAssertEqual(source.fetchCount, 2)
        for index in 0..<10 {
            _ = await cache.key(for: "Y\(index)")
        }
        XCTAssertEqual(source.fetchCount, 2, "a broker that failed is asked again after the interval")
        source.answer(serving("A", "Y"))
        clock.advance(by: 30)
        let found = await cache.key(for: "Y")
        XCTAssertNotNil(found)
        XCTAssertEqual(source.fetchCount, 3)
    }
}
