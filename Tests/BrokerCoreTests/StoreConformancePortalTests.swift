import BrokerCore
import Foundation
import XCTest

/// A session's origin (``SessionOrigin``) through every read of its family, on every engine.
extension StoreConformanceTests {
    /// A User-Agent of 500 scalars, with control characters a client may send (NUL, which
    /// PostgreSQL's text cannot even hold, CR LF, an escape sequence, NEL, U+2028), keeps its
    /// first 200 other scalars, and every read of the family gives it back as written.
    func testASessionsOriginRoundTripsThroughEveryReadOfItsFamily() async throws {
        let controls: Set<Unicode.Scalar> = ["\u{0}", "\r", "\n", "\u{1B}", "\u{7F}", "\u{85}", "\u{2028}", "\u{2029}"]
        let pieces: [Unicode.Scalar] = [
            "M", "\u{0}", "o", "\r", "\n", "z", "\u{1B}", "[", "\u{7F}", "é", "\u{85}", "\u{2028}", "\u{1F469}", "\u{200D}",
            "\u{1F4BB}", " ", "\u{2029}", "z",
        ]
        let userAgent = String(String.UnicodeScalarView((0..<500).map { pieces[$0 % pieces.count] }))
        XCTAssertEqual(userAgent.unicodeScalars.count, 500)
        let expected = String(String.UnicodeScalarView(userAgent.unicodeScalars.filter { !controls.contains($0) }.prefix(200)))
        let origin = SessionOrigin(clientIP: "2001:db8::1", userAgent: userAgent)
        XCTAssertEqual(origin.userAgent, expected)
        XCTAssertEqual(origin.userAgent?.unicodeScalars.count, 200)

        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            let cluster = RefreshFamily(
                id: "cluster", userID: user, organizationID: org, authenticatedAt: StoreFixture.t0,
                expiresAt: StoreFixture.t0.addingTimeInterval(86_400), authenticationMethods: ["pwd"], accountVersions: .initial,
                origin: origin)
            let bare = StoreFixture.family("bare", user: user, org: org)
            let addressOnly = RefreshFamily(
                id: "address-only", userID: user, scope: .broker, authenticatedAt: StoreFixture.t0.addingTimeInterval(1),
                expiresAt: StoreFixture.t0.addingTimeInterval(86_400), authenticationMethods: ["pwd"], accountVersions: .initial,
                origin: SessionOrigin(clientIP: "192.0.2.1", userAgent: ""))
            try await store.transaction { tx in
                try await tx.insertRefreshFamily(cluster)
                try await tx.insertRefreshFamily(bare)
                try await tx.insertRefreshFamily(addressOnly)
                try await tx.insertRefreshToken(
                    RefreshTokenRecord(
                        tokenHash: "origin-token", familyID: "cluster", issuedAt: StoreFixture.t0,
                        expiresAt: StoreFixture.t0.addingTimeInterval(3600)))
            }
            try await store.read { tx in
                let byID = try await tx.refreshFamily(id: "cluster")
                XCTAssertEqual(byID?.origin, origin)
                XCTAssertEqual(byID, cluster)
                let listed = try await tx.refreshFamilies(userID: user)
                XCTAssertEqual(listed.map(\.id), ["address-only", "bare", "cluster"])
                XCTAssertEqual(listed.map(\.origin), [SessionOrigin(clientIP: "192.0.2.1", userAgent: nil), nil, origin])
            }
            let renewal = try await store.lockingTransaction { tx in try await tx.renewal(ofTokenHash: "origin-token") }
            XCTAssertEqual(renewal?.family, cluster)
            XCTAssertEqual(renewal?.family.origin?.userAgent, expected)
        }
    }
}

/// What a ``SessionOrigin`` keeps of what a request said.
final class SessionOriginTests: XCTestCase {
    func testEmptyValuesAreNil() {
        XCTAssertEqual(SessionOrigin(clientIP: "", userAgent: ""), SessionOrigin(clientIP: nil, userAgent: nil))
        XCTAssertNil(SessionOrigin(clientIP: nil, userAgent: "\r\n\u{1B}").userAgent, "nothing left once controls are removed")
        XCTAssertEqual(SessionOrigin(clientIP: "198.51.100.4", userAgent: nil).clientIP, "198.51.100.4")
    }

    func testTheLimitCountsScalarsLeftAfterControlsAreRemoved() {
        let userAgent = String(repeating: "\n", count: 300) + String(repeating: "a", count: 150) + "\u{2028}"
            + String(repeating: "é", count: 100)
        let kept = SessionOrigin(clientIP: nil, userAgent: userAgent).userAgent
        XCTAssertEqual(kept, String(repeating: "a", count: 150) + String(repeating: "é", count: 50))
        let short = "curl/8.5.0"
        XCTAssertEqual(SessionOrigin(clientIP: nil, userAgent: short).userAgent, short, "kept as it is")
        // Format characters (a zero-width joiner) are not controls: an emoji sequence stays whole.
        XCTAssertEqual(SessionOrigin(clientIP: nil, userAgent: "\u{1F469}\u{200D}\u{1F4BB}").userAgent, "\u{1F469}\u{200D}\u{1F4BB}")
    }
}
