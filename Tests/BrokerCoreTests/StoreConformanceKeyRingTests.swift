import BrokerCore
import Foundation
import XCTest

extension StoreConformanceTests {
    /// The key ring's row (``DatabaseKeyRing``) is a compare-and-swap on its version on every
    /// engine: the first insert wins, a second insert and a stale update change nothing, and
    /// two stores (two replicas) racing the same update see exactly one success.
    func testTheStoredKeyRingIsACompareAndSwapOnItsVersion() async throws {
        try await onEveryEngine {
            let store = try await self.makeStore()
            let empty = try await store.read { tx in try await tx.storedKeyRing() }
            XCTAssertNil(empty)
            let first = StoredKeyRing(version: 1, document: Array("first".utf8))
            let inserted = try await store.transaction { tx in try await tx.replaceStoredKeyRing(first, expectedVersion: nil) }
            XCTAssertTrue(inserted)
            let again = try await store.transaction { tx in
                try await tx.replaceStoredKeyRing(StoredKeyRing(version: 1, document: Array("other".utf8)), expectedVersion: nil)
            }
            XCTAssertFalse(again, "a second insert loses to the first")
            let stale = try await store.transaction { tx in
                try await tx.replaceStoredKeyRing(StoredKeyRing(version: 3, document: Array("stale".utf8)), expectedVersion: 2)
            }
            XCTAssertFalse(stale, "an update from a version that is not the stored one changes nothing")

            let other = try await self.makeStore()  // the same database: another replica
            let second = StoredKeyRing(version: 2, document: Array([0, 255, 1, 254] + Array("second".utf8)))
            async let fromFirst = store.transaction { tx in try await tx.replaceStoredKeyRing(second, expectedVersion: 1) }
            async let fromOther = other.transaction { tx in try await tx.replaceStoredKeyRing(second, expectedVersion: 1) }
            let outcomes = try await [fromFirst, fromOther]
            XCTAssertEqual(outcomes.filter { $0 }.count, 1, "one of two racing writers wins: \(outcomes)")
            let stored = try await other.read { tx in try await tx.storedKeyRing() }
            XCTAssertEqual(stored?.version, 2)
            XCTAssertEqual(stored?.document, second.document, "bytes come back as written")
        }
    }
}
