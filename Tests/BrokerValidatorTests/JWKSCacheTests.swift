import BrokerCrypto
import BrokerValidator
import Foundation
import XCTest

/// The cache against a scripted source and a manual clock: freshness, refetch limits, and
/// what survives a broker that is down or answers nonsense.
final class JWKSCacheTests: XCTestCase {
    let esKid = TestKeys.kid(TestKeys.es256)
    let rsKid = TestKeys.kid(TestKeys.rs256)
    var clock: ManualWallClock!
    var events: EventLog!

    override func setUp() {
        clock = ManualWallClock(Date(timeIntervalSince1970: 1_800_000_000))
        events = EventLog()
    }

    func makeCache(_ source: FakeJWKSSource, _ configure: (inout JWKSCacheConfiguration) -> Void = { _ in }) -> JWKSCache {
        var configuration = JWKSCacheConfiguration(
            minimumMaxAge: 10, maximumMaxAge: 3600, defaultMaxAge: 300, refetchInterval: 30, maximumDocumentSize: 64 * 1024)
        configure(&configuration)
        let events = self.events!
        return JWKSCache(source: source, configuration: configuration, clock: clock) { events.record($0) }
    }

    func testMaxAgeIsHonouredAndRevalidatedWithTheETag() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256), etag: "\"ring-1\"", maxAge: 120)
        let cache = makeCache(source)
        let firstKey = await cache.key(for: esKid)
        XCTAssertNotNil(firstKey)
        XCTAssertEqual(source.fetchCount, 1)
        clock.advance(by: 119)
        _ = await cache.key(for: esKid)
        XCTAssertEqual(source.fetchCount, 1, "fresh for max-age")
        clock.advance(by: 1)
        let afterRevalidation = await cache.key(for: esKid)
        XCTAssertNotNil(afterRevalidation, "304 keeps the keys")
        XCTAssertEqual(source.etagsSent, [nil, "\"ring-1\""])
        XCTAssertEqual(events.all.last, .notModified)
        // The 304 renewed the freshness for another max-age.
        clock.advance(by: 119)
        _ = await cache.key(for: esKid)
        XCTAssertEqual(source.fetchCount, 2)
    }

    func testMaxAgeIsBoundedByTheConfiguration() async throws {
        let document = JWKSDocuments.document(TestKeys.es256)
        let source = FakeJWKSSource(document: document, etag: nil, maxAge: 0)
        let cache = makeCache(source)
        _ = await cache.key(for: esKid)
        clock.advance(by: 9)
        _ = await cache.key(for: esKid)
        XCTAssertEqual(source.fetchCount, 1, "max-age=0 is raised to the 10 s floor")
        clock.advance(by: 1)
        _ = await cache.key(for: esKid)
        XCTAssertEqual(source.fetchCount, 2)

        source.answer(FakeJWKSSource.serving(document, etag: nil, maxAge: 31_536_000))
        clock.advance(by: 10)
        _ = await cache.key(for: esKid)
        XCTAssertEqual(source.fetchCount, 3)
        clock.advance(by: 3599)
        _ = await cache.key(for: esKid)
        XCTAssertEqual(source.fetchCount, 3)
        clock.advance(by: 1)
        _ = await cache.key(for: esKid)
        XCTAssertEqual(source.fetchCount, 4, "a year-long max-age is cut to the 1 h ceiling")

        source.answer(FakeJWKSSource.serving(document, etag: nil, maxAge: nil))
        clock.advance(by: 3600)
        _ = await cache.key(for: esKid)
        clock.advance(by: 299)
        _ = await cache.key(for: esKid)
        XCTAssertEqual(source.fetchCount, 5, "no max-age: the default 300 s")
        clock.advance(by: 1)
        _ = await cache.key(for: esKid)
        XCTAssertEqual(source.fetchCount, 6)
    }

    func testUnknownKidsShareTheFetchInFlightAndMeetTheCeiling() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256), etag: nil)
        let cache = makeCache(source)
        _ = await cache.key(for: esKid)
        XCTAssertEqual(source.fetchCount, 1)
        clock.advance(by: 30)
        source.delay(.milliseconds(100))
        let found = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<50 {
                group.addTask { await cache.key(for: "invented-\(index)") != nil }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        XCTAssertEqual(found, 0)
        XCTAssertEqual(source.fetchCount, 2, "50 concurrent misses share one fetch")
        for index in 0..<50 {
            _ = await cache.key(for: "more-\(index)")
        }
        XCTAssertEqual(source.fetchCount, 5, "no more than 4 fetches for unknown kids within the interval")
        clock.advance(by: 29)
        _ = await cache.key(for: "later")
        XCTAssertEqual(source.fetchCount, 5)
        clock.advance(by: 1)
        _ = await cache.key(for: "later")
        XCTAssertEqual(source.fetchCount, 6)
    }

    func testAKeyPublishedByARotationIsFoundByTheUnknownKidRefetch() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256), etag: "\"1\"")
        let cache = makeCache(source)
        _ = await cache.key(for: esKid)
        source.answer(FakeJWKSSource.serving(JWKSDocuments.document(TestKeys.es256, TestKeys.rs256), etag: "\"2\""))
        clock.advance(by: 30)
        let rotated = await cache.key(for: rsKid)
        XCTAssertEqual(rotated?.algorithm, .rs256)
        XCTAssertEqual(source.etagsSent, [nil, "\"1\""])
    }

    func testAnUnknownKidRightAfterAFetchDoesNotFetchAgain() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256), etag: nil)
        let cache = makeCache(source)
        let unknown = await cache.key(for: "unknown")
        XCTAssertNil(unknown)
        XCTAssertEqual(source.fetchCount, 1, "the initial fetch counts against the interval")
    }

    func testTheLastGoodSetIsServedWhileTheSourceFails() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256), etag: "\"1\"", maxAge: 60)
        let cache = makeCache(source)
        _ = await cache.key(for: esKid)
        source.fail()
        clock.advance(by: 61)
        let whileDown = await cache.key(for: esKid)
        XCTAssertNotNil(whileDown)
        XCTAssertEqual(source.fetchCount, 2)
        XCTAssertEqual(events.all.last, .failed(reason: "fetch failed: broker unreachable", servingKeys: 1))
        // Retried after the refetch interval, not on every request.
        for _ in 0..<20 { _ = await cache.key(for: esKid) }
        clock.advance(by: 29)
        _ = await cache.key(for: esKid)
        XCTAssertEqual(source.fetchCount, 2)
        clock.advance(by: 1)
        let stillServed = await cache.key(for: esKid)
        XCTAssertNotNil(stillServed)
        XCTAssertEqual(source.fetchCount, 3)
        // Hours later, still down: still served.
        clock.advance(by: 36_000)
        let muchLater = await cache.key(for: esKid)
        XCTAssertNotNil(muchLater)
        // Back up: the cache recovers, and its ETag still matches.
        source.answer(FakeJWKSSource.serving(JWKSDocuments.document(TestKeys.es256), etag: "\"1\"", maxAge: 60))
        clock.advance(by: 30)
        _ = await cache.key(for: esKid)
        XCTAssertEqual(source.etagsSent.last, "\"1\"")
        XCTAssertEqual(events.all.last, .notModified)
    }

    func testNonsenseAndOversizedDocumentsKeepTheLastGoodSet() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256), etag: "\"1\"", maxAge: 60)
        let cache = makeCache(source) { $0.maximumDocumentSize = 4096 }
        _ = await cache.key(for: esKid)
        let bad: [[UInt8]] = [
            Array("<html>maintenance</html>".utf8),
            Array(#"{"keys":[]}"#.utf8),
            JWKSDocuments.document([JWKSDocuments.jwk(TestKeys.rs256)] + Array(repeating: ["kty": "junk"], count: 500)),
        ]
        for document in bad {
            source.answer(FakeJWKSSource.serving(document, etag: "\"2\""))
            clock.advance(by: 60)
            let key = await cache.key(for: esKid)
            XCTAssertNotNil(key)
            guard case .failed? = events.all.last else { return XCTFail("\(events.all)") }
            let rotated = await cache.key(for: rsKid)
            XCTAssertNil(rotated, "nothing from a refused document is used")
        }
        XCTAssertTrue("\(events.all.last!)".contains("exceeds the 4096-byte limit"), "\(events.all.last!)")
        // The refused documents' ETag was never adopted.
        XCTAssertEqual(source.etagsSent.last, "\"1\"")
    }

    func testBadEntriesAreSkippedWithoutLosingTheGoodOnes() async throws {
        var weak = JWKSDocuments.jwk(TestKeys.rs256, kid: "forged-alg")
        weak["alg"] = "EdDSA"
        let source = FakeJWKSSource(document: JWKSDocuments.document([weak, JWKSDocuments.jwk(TestKeys.es256)]))
        let cache = makeCache(source)
        let good = await cache.key(for: esKid)
        let skipped = await cache.key(for: "forged-alg")
        XCTAssertNotNil(good)
        XCTAssertNil(skipped)
        guard case .updated(let kids, let skippedEntries)? = events.all.first else { return XCTFail("\(events.all)") }
        XCTAssertEqual(kids, [esKid])
        XCTAssertEqual(skippedEntries.map(\.kid), ["forged-alg"])
    }

    func testAFailedFirstFetchBacksOffToo() async throws {
        let source = FakeJWKSSource(document: [])
        source.fail()
        let cache = makeCache(source)
        for _ in 0..<10 {
            let key = await cache.key(for: esKid)
            XCTAssertNil(key)
        }
        XCTAssertEqual(source.fetchCount, 1)
        source.answer(FakeJWKSSource.serving(JWKSDocuments.document(TestKeys.es256)))
        clock.advance(by: 30)
        let key = await cache.key(for: esKid)
        XCTAssertNotNil(key)
        XCTAssertEqual(source.etagsSent, [nil, nil], "no ETag without a cached document")
    }

    func testA304WithoutACachedDocumentIsAFailure() async throws {
        let source = FakeJWKSSource { _ in .notModified(maxAge: 300) }
        let cache = makeCache(source)
        let key = await cache.key(for: esKid)
        XCTAssertNil(key)
        guard case .failed? = events.all.last else { return XCTFail("\(events.all)") }
    }

    /// A gateway's setting: once stale, a known key is answered at once from the held set while
    /// the refetch runs; a slow or unreachable broker delays nothing.
    func testStaleWhileRevalidatingAnswersKnownKeysWithoutWaiting() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256), etag: "\"ring-1\"", maxAge: 60)
        let cache = makeCache(source) { $0.serveStaleWhileRevalidating = true }
        _ = await cache.key(for: esKid)
        clock.advance(by: 61)
        source.fail()
        source.delay(.seconds(5))
        let started = ContinuousClock.now
        let stale = await cache.key(for: esKid)
        XCTAssertNotNil(stale, "answered from the held set")
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(1), "without waiting for the 5 s fetch")
        // The background fetch ran (and failed), the set is still served.
        await cache.refresh()
        XCTAssertGreaterThanOrEqual(source.fetchCount, 2)
        let still = await cache.key(for: esKid)
        XCTAssertNotNil(still)
    }
}
