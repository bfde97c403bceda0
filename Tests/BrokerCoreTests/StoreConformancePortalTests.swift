import BrokerCore
import Foundation
import XCTest

/// What the portal keeps in the store, on every engine: a browser's session (a `.broker` family
/// with a `portal_sessions` row, keyed by its cookie's hash) read with its family and account in
/// one piece, touched, deleted and never overwritten; the row following its family and its
/// account out of the store; an account's own membership requests; and a session's origin
/// through every read of a family.
extension StoreConformanceTests {
    /// A cookie's hash as the portal stores it: 64 hex digits.
    static func portalHash(_ seed: Character) -> String { String(repeating: seed, count: 64) }

    static func brokerFamily(
        _ id: String, user: Int64, expiresAt: Date = StoreFixture.t0.addingTimeInterval(86_400), origin: SessionOrigin? = nil
    ) -> RefreshFamily {
        RefreshFamily(
            id: id, userID: user, scope: .broker, authenticatedAt: StoreFixture.t0, expiresAt: expiresAt,
            authenticationMethods: ["pwd"], accountVersions: .initial, origin: origin)
    }

    func testAPortalSessionIsReadWithItsFamilyAndAccountTouchedAndDeleted() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, _) = try await StoreFixture.seedUserAndOrganization(store)
            let hash = Self.portalHash("a")
            let family = Self.brokerFamily(
                "browser", user: user, origin: SessionOrigin(clientIP: "192.0.2.7", userAgent: "Mozilla/5.0 (X11; Linux x86_64)"))
            let seen = StoreFixture.date(1_700_000_100.25)
            try await store.transaction { tx in
                try await tx.insertRefreshFamily(family)
                try await tx.insertPortalSession(idHash: hash, familyID: "browser", at: seen)
            }
            let alice = try await store.read { tx in try await tx.user(id: user) }
            let read = try await store.read { tx in try await tx.portalSession(idHash: hash) }
            XCTAssertEqual(read, PortalSessionSnapshot(idHash: hash, family: family, lastSeenAt: seen, user: alice))
            let unknown = try await store.read { tx in try await tx.portalSession(idHash: Self.portalHash("b")) }
            XCTAssertNil(unknown)

            try await store.transaction { tx in
                try await tx.touchPortalSession(idHash: hash, at: seen.addingTimeInterval(60))
                // A request that finished later but started earlier does not move it back.
                try await tx.touchPortalSession(idHash: hash, at: seen.addingTimeInterval(30))
            }
            let touched = try await store.read { tx in try await tx.portalSession(idHash: hash)?.lastSeenAt }
            XCTAssertEqual(touched, seen.addingTimeInterval(60))
            await self.assertThrows(.notFound("portal session bbbbbbbbbbbb…")) {
                try await store.transaction { tx in try await tx.touchPortalSession(idHash: Self.portalHash("b"), at: seen) }
            }

            try await store.transaction { tx in
                let deleted = try await tx.deletePortalSession(idHash: hash)
                XCTAssertTrue(deleted)
                let again = try await tx.deletePortalSession(idHash: hash)
                XCTAssertFalse(again)
                let gone = try await tx.portalSession(idHash: hash)
                XCTAssertNil(gone)
                let kept = try await tx.refreshFamily(id: "browser")
                XCTAssertEqual(kept, family, "the family stays: the caller revokes it")
            }
        }
    }

    func testAPortalSessionIsNeverOverwritten() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, _) = try await StoreFixture.seedUserAndOrganization(store)
            let (first, second) = (Self.portalHash("a"), Self.portalHash("c"))
            try await store.transaction { tx in
                try await tx.insertRefreshFamily(Self.brokerFamily("one", user: user))
                try await tx.insertRefreshFamily(Self.brokerFamily("two", user: user))
                try await tx.insertPortalSession(idHash: first, familyID: "one", at: StoreFixture.t0)
            }
            await self.assertThrows(.duplicate("portal session aaaaaaaaaaaa…")) {
                try await store.transaction { tx in
                    try await tx.insertPortalSession(idHash: first, familyID: "two", at: StoreFixture.t0.addingTimeInterval(5))
                }
            }
            await self.assertThrows(.duplicate("portal session of refresh family one")) {
                try await store.transaction { tx in
                    try await tx.insertPortalSession(idHash: second, familyID: "one", at: StoreFixture.t0.addingTimeInterval(5))
                }
            }
            await self.assertThrows(.notFound("refresh family ghost")) {
                try await store.transaction { tx in
                    try await tx.insertPortalSession(idHash: second, familyID: "ghost", at: StoreFixture.t0)
                }
            }
            // A failed insert is undone alone: the transaction carries on and commits.
            try await store.transaction { tx in
                do {
                    try await tx.insertPortalSession(idHash: first, familyID: "two", at: StoreFixture.t0)
                    XCTFail("a duplicate hash was inserted")
                } catch StoreError.duplicate {}
                try await tx.insertPortalSession(idHash: second, familyID: "two", at: StoreFixture.t0)
            }
            try await store.read { tx in
                let kept = try await tx.portalSession(idHash: first)
                XCTAssertEqual(kept?.family.id, "one", "the first row, as it was")
                XCTAssertEqual(kept?.lastSeenAt, StoreFixture.t0)
                let other = try await tx.portalSession(idHash: second)
                XCTAssertEqual(other?.family.id, "two")
            }
        }
    }

    func testAPortalSessionGoesWithItsPrunedFamilyAndWithItsAccount() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (alice, _) = try await StoreFixture.seedUserAndOrganization(store)
            let t0 = StoreFixture.t0
            let bob = try await store.transaction { tx in
                let bob = try await tx.insertUser(StoreFixture.newUser("bob")).id
                try await tx.insertRefreshFamily(Self.brokerFamily("expired", user: alice, expiresAt: t0.addingTimeInterval(10)))
                try await tx.insertRefreshFamily(Self.brokerFamily("live", user: alice))
                try await tx.insertRefreshFamily(Self.brokerFamily("bob's", user: bob))
                try await tx.insertPortalSession(idHash: Self.portalHash("e"), familyID: "expired", at: t0)
                try await tx.insertPortalSession(idHash: Self.portalHash("l"), familyID: "live", at: t0)
                try await tx.insertPortalSession(idHash: Self.portalHash("b"), familyID: "bob's", at: t0)
                return bob
            }
            let cutoffs = PruneCutoffs(
                sessionsExpiredBefore: t0.addingTimeInterval(100), unusedRefreshTokensExpiredBefore: t0.addingTimeInterval(100),
                revocationsExpiredBefore: t0.addingTimeInterval(100))
            let pruned = try await store.transaction { tx in try await tx.pruneStorage(cutoffs, limit: 10) }
            XCTAssertEqual(pruned, PrunedRows(sessions: 1), "the expired session; its portal row goes by cascade, uncounted")
            try await store.read { tx in
                let expired = try await tx.portalSession(idHash: Self.portalHash("e"))
                XCTAssertNil(expired, "the row went with its family")
                let live = try await tx.portalSession(idHash: Self.portalHash("l"))
                XCTAssertEqual(live?.family.id, "live")
                let seen = try await tx.portalSessionLastSeen(userID: alice)
                XCTAssertEqual(seen, ["live": t0])
            }
            let nothing = try await store.transaction { tx in try await tx.pruneStorage(cutoffs, limit: 10) }
            XCTAssertEqual(nothing, PrunedRows())

            try await store.transaction { tx in
                let deleted = try await tx.deleteUser(id: bob)
                XCTAssertTrue(deleted)
                let gone = try await tx.portalSession(idHash: Self.portalHash("b"))
                XCTAssertNil(gone, "the row went with the account's families")
                let seen = try await tx.portalSessionLastSeen(userID: bob)
                XCTAssertEqual(seen, [:])
                let alices = try await tx.portalSession(idHash: Self.portalHash("l"))
                XCTAssertNotNil(alices)
            }
        }
    }

    func testPortalSessionLastSeenNamesTheAccountsBrowsersOnly() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (alice, org) = try await StoreFixture.seedUserAndOrganization(store)
            let t0 = StoreFixture.t0
            let bob = try await store.transaction { tx in
                let bob = try await tx.insertUser(StoreFixture.newUser("bob")).id
                try await tx.insertRefreshFamily(Self.brokerFamily("browser-1", user: alice))
                try await tx.insertRefreshFamily(Self.brokerFamily("browser-2", user: alice))
                try await tx.insertRefreshFamily(Self.brokerFamily("api-session", user: alice))
                try await tx.insertRefreshFamily(StoreFixture.family("cluster", user: alice, org: org))
                try await tx.insertRefreshFamily(Self.brokerFamily("bobs-browser", user: bob))
                try await tx.insertPortalSession(idHash: Self.portalHash("1"), familyID: "browser-1", at: t0)
                try await tx.insertPortalSession(idHash: Self.portalHash("2"), familyID: "browser-2", at: t0)
                try await tx.insertPortalSession(idHash: Self.portalHash("b"), familyID: "bobs-browser", at: t0)
                try await tx.touchPortalSession(idHash: Self.portalHash("2"), at: t0.addingTimeInterval(90.5))
                return bob
            }
            try await store.read { tx in
                let alices = try await tx.portalSessionLastSeen(userID: alice)
                XCTAssertEqual(alices, ["browser-1": t0, "browser-2": t0.addingTimeInterval(90.5)])
                let bobs = try await tx.portalSessionLastSeen(userID: bob)
                XCTAssertEqual(bobs, ["bobs-browser": t0])
                let nobody = try await tx.portalSessionLastSeen(userID: 999)
                XCTAssertEqual(nobody, [:])
            }
        }
    }

    func testAnAccountsOwnMembershipRequestsAreItsOnlyOldestFirstWithTheOrganization() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (alice, physics) = try await StoreFixture.seedUserAndOrganization(store)
            let t0 = StoreFixture.t0
            let (bob, carol, chemistry, biology) = try await store.transaction { tx in
                let bob = try await tx.insertUser(StoreFixture.newUser("bob")).id
                let carol = try await tx.insertUser(StoreFixture.newUser("carol")).id
                let chemistry = try await tx.insertOrganization(name: "chemistry", clusterName: "chem", createdAt: t0).id
                let biology = try await tx.insertOrganization(name: "biology", clusterName: "bio-cluster", createdAt: t0).id
                try await tx.insertMembershipRequest(organizationID: physics, userID: alice, at: t0.addingTimeInterval(5))
                try await tx.insertMembershipRequest(organizationID: chemistry, userID: alice, at: t0.addingTimeInterval(5))
                try await tx.insertMembershipRequest(organizationID: biology, userID: alice, at: t0.addingTimeInterval(1.5))
                try await tx.insertMembershipRequest(organizationID: physics, userID: bob, at: t0)
                return (bob, carol, chemistry, biology)
            }
            try await store.read { tx in
                let alices = try await tx.membershipRequests(userID: alice)
                XCTAssertEqual(
                    alices,
                    [
                        OwnMembershipRequest(
                            organizationID: biology, organizationName: "biology", clusterName: "bio-cluster",
                            requestedAt: t0.addingTimeInterval(1.5)),
                        OwnMembershipRequest(
                            organizationID: chemistry, organizationName: "chemistry", clusterName: "chem",
                            requestedAt: t0.addingTimeInterval(5)),
                        OwnMembershipRequest(
                            organizationID: physics, organizationName: "physics", clusterName: "physics-cluster",
                            requestedAt: t0.addingTimeInterval(5)),
                    ], "oldest first, then by organization name")
                let bobs = try await tx.membershipRequests(userID: bob)
                XCTAssertEqual(bobs.map(\.organizationName), ["physics"])
                let carols = try await tx.membershipRequests(userID: carol)
                XCTAssertEqual(carols, [])
            }
            try await store.transaction { tx in
                _ = try await tx.deleteMembershipRequest(organizationID: chemistry, userID: alice)
                try await tx.upsertMembership(
                    Membership(organizationID: biology, userID: alice, role: .member, isActive: true, createdAt: t0))
                _ = try await tx.deleteMembershipRequest(organizationID: biology, userID: alice)
            }
            let left = try await store.read { tx in try await tx.membershipRequests(userID: alice).map(\.organizationName) }
            XCTAssertEqual(left, ["physics"], "only pending requests")
        }
    }

    /// A User-Agent of 500 scalars, with control characters a client may send (NUL, which
    /// PostgreSQL's text cannot even hold, CR LF, an escape sequence, NEL, U+2028), keeps its
    /// first 200 other scalars, and every read of the family gives it back as written.
    func testASessionsOriginAndClientRoundTripThroughEveryReadOfItsFamily() async throws {
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
                origin: origin, client: ClientID(stored: "notebook-app"))
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
                // The client (migration 16) comes with every read too; none recorded reads as nil.
                XCTAssertEqual(listed.map(\.client), [nil, nil, ClientID(stored: "notebook-app")])
            }
            let renewal = try await store.lockingTransaction { tx in try await tx.renewal(ofTokenHash: "origin-token") }
            XCTAssertEqual(renewal?.family, cluster)
            XCTAssertEqual(renewal?.family.origin?.userAgent, expected)
            XCTAssertEqual(renewal?.family.client, ClientID(stored: "notebook-app"))
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
