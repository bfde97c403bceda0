import BrokerCore
import Foundation
import XCTest

/// Invitations to the portal's sign-up (`portal_invites`, migration 15), on every engine: a row
/// read back as written by its code's hash and its id, never overwritten; lists per organization
/// (nil: the account-only ones), newest first; used once, even by two stores racing; refused once
/// expired; gone with its organization, kept (without the name) when its creator or user goes;
/// pruned once expired, within the batch limit.
extension StoreConformanceTests {
    static func invitation(
        _ id: String, code: String? = nil, organization: Int64?, role: Role = .member, createdBy: Int64? = nil,
        createdAt: Date = StoreFixture.t0, expiresAt: Date = StoreFixture.t0.addingTimeInterval(3600)
    ) -> Invitation {
        Invitation(
            id: id, codeHash: InvitationCode.hash(of: code ?? "code-of-\(id)"), organizationID: organization, role: role,
            createdBy: createdBy, createdAt: createdAt, expiresAt: expiresAt)
    }

    func testAnInvitationIsReadByItsCodeAndIdAndListedNewestFirst() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (alice, org) = try await StoreFixture.seedUserAndOrganization(store)
            let t0 = StoreFixture.t0
            let owners = Self.invitation("inv-owner", organization: org, role: .owner, createdBy: alice, createdAt: t0.addingTimeInterval(1.5))
            let member = Self.invitation("inv-member", organization: org, createdAt: t0)
            let later = Self.invitation("inv-later", organization: org, role: .admin, createdAt: t0.addingTimeInterval(9))
            let alone = Self.invitation("inv-alone", organization: nil, createdBy: alice)
            let other = try await store.transaction { tx in
                let other = try await tx.insertOrganization(name: "chemistry", clusterName: "chem", createdAt: t0).id
                for invitation in [owners, member, later, alone] { try await tx.insertInvitation(invitation) }
                try await tx.insertInvitation(Self.invitation("inv-chem", organization: other))
                return other
            }
            try await store.read { tx in
                let byCode = try await tx.invitation(codeHash: InvitationCode.hash(of: "code-of-inv-owner"))
                XCTAssertEqual(byCode, owners)
                let byID = try await tx.invitation(id: "inv-alone")
                XCTAssertEqual(byID, alone)
                let unknownCode = try await tx.invitation(codeHash: InvitationCode.hash(of: "nobody's"))
                XCTAssertNil(unknownCode)
                let unknownID = try await tx.invitation(id: "inv-ghost")
                XCTAssertNil(unknownID)
                let listed = try await tx.invitations(organizationID: org)
                XCTAssertEqual(listed, [later, owners, member], "newest first")
                let accountsOnly = try await tx.invitations(organizationID: nil)
                XCTAssertEqual(accountsOnly, [alone])
                let chemistry = try await tx.invitations(organizationID: other)
                XCTAssertEqual(chemistry.map(\.id), ["inv-chem"])
                let none = try await tx.invitations(organizationID: 999)
                XCTAssertEqual(none, [])
            }
        }
    }

    func testAnInvitationIsNeverOverwrittenAndNeedsWhatItNames() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (_, org) = try await StoreFixture.seedUserAndOrganization(store)
            let first = Self.invitation("inv-1", code: "AAAA", organization: org)
            try await store.transaction { tx in try await tx.insertInvitation(first) }
            await self.assertThrows(.duplicate("invitation inv-1")) {
                try await store.transaction { tx in try await tx.insertInvitation(Self.invitation("inv-1", code: "BBBB", organization: nil)) }
            }
            await self.assertThrows(.duplicate("invitation code")) {
                try await store.transaction { tx in try await tx.insertInvitation(Self.invitation("inv-2", code: "aaaa", organization: nil)) }
            }
            await self.assertThrows(.notFound("organization 999")) {
                try await store.transaction { tx in try await tx.insertInvitation(Self.invitation("inv-3", organization: 999)) }
            }
            await self.assertThrows(.notFound("user 777")) {
                try await store.transaction { tx in
                    try await tx.insertInvitation(Self.invitation("inv-4", organization: org, createdBy: 777))
                }
            }
            // A failed insert is undone alone: the transaction carries on and commits.
            try await store.transaction { tx in
                do {
                    try await tx.insertInvitation(Self.invitation("inv-1", code: "CCCC", organization: nil))
                    XCTFail("a duplicate id was inserted")
                } catch StoreError.duplicate {}
                try await tx.insertInvitation(Self.invitation("inv-5", code: "CCCC", organization: nil))
            }
            try await store.read { tx in
                let kept = try await tx.invitation(id: "inv-1")
                XCTAssertEqual(kept, first, "the first row, as it was")
                let added = try await tx.invitation(codeHash: InvitationCode.hash(of: "CCCC"))
                XCTAssertEqual(added?.id, "inv-5")
            }
        }
    }

    func testAnInvitationIsRedeemedOnceBeforeItExpiresAndThenDeleted() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (alice, org) = try await StoreFixture.seedUserAndOrganization(store)
            let t0 = StoreFixture.t0
            let bob = try await store.transaction { tx in
                try await tx.insertInvitation(Self.invitation("inv-open", organization: org, expiresAt: t0.addingTimeInterval(100)))
                try await tx.insertInvitation(Self.invitation("inv-short", organization: nil, expiresAt: t0.addingTimeInterval(100)))
                return try await tx.insertUser(StoreFixture.newUser("bob")).id
            }
            let used = t0.addingTimeInterval(99.5)
            try await store.transaction { tx in
                let redeemed = try await tx.redeemInvitation(id: "inv-open", by: alice, at: used)
                XCTAssertTrue(redeemed)
                let again = try await tx.redeemInvitation(id: "inv-open", by: bob, at: used)
                XCTAssertFalse(again, "used once")
                let atExpiry = try await tx.redeemInvitation(id: "inv-short", by: bob, at: t0.addingTimeInterval(100))
                XCTAssertFalse(atExpiry, "expired at expires_at")
                let unknown = try await tx.redeemInvitation(id: "inv-ghost", by: bob, at: used)
                XCTAssertFalse(unknown)
            }
            await self.assertThrows(.notFound("user 777")) {
                try await store.transaction { tx in _ = try await tx.redeemInvitation(id: "inv-short", by: 777, at: t0) }
            }
            try await store.transaction { tx in
                let read = try await tx.invitation(id: "inv-open")
                XCTAssertEqual(read?.usedAt, used)
                XCTAssertEqual(read?.usedBy, alice)
                XCTAssertEqual(read?.isOpen(at: t0), false)
                let short = try await tx.invitation(id: "inv-short")
                XCTAssertNil(short?.usedAt, "a refused use leaves it as it was")
                XCTAssertEqual(short?.isOpen(at: t0), true)
                let deleted = try await tx.deleteInvitation(id: "inv-short")
                XCTAssertTrue(deleted)
                let twice = try await tx.deleteInvitation(id: "inv-short")
                XCTAssertFalse(twice)
                let gone = try await tx.invitation(id: "inv-short")
                XCTAssertNil(gone)
            }
        }
    }

    /// Two stores (two replicas, or the server and a CLI) each create an account and use one
    /// code in one transaction, at the same moment: exactly one account is made with it, and the
    /// other transaction leaves nothing behind.
    func testACodeIsRedeemedOnceUnderTwoRacingTransactions() async throws {
        struct Refused: Error {}
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let other = try await self.makeStore()  // the same database: another replica
            let (_, org) = try await StoreFixture.seedUserAndOrganization(store)
            for round in 0..<5 {
                let id = "inv-race-\(round)"
                try await store.transaction { tx in try await tx.insertInvitation(Self.invitation(id, organization: org)) }
                func signUp(_ name: String, on store: any Store) async throws -> Bool {
                    do {
                        return try await store.transaction { tx in
                            let user = try await tx.insertUser(StoreFixture.newUser(name))
                            await Task.yield()
                            guard try await tx.redeemInvitation(id: id, by: user.id, at: StoreFixture.t0) else { throw Refused() }
                            return true
                        }
                    } catch is Refused {
                        return false
                    }
                }
                async let fromFirst = signUp("first-\(round)", on: store)
                async let fromOther = signUp("other-\(round)", on: other)
                let outcomes = try await [fromFirst, fromOther]
                XCTAssertEqual(outcomes.filter { $0 }.count, 1, "round \(round): one of two racing sign-ups wins: \(outcomes)")
                let winner = outcomes[0] ? "first-\(round)" : "other-\(round)"
                let loser = outcomes[0] ? "other-\(round)" : "first-\(round)"
                try await other.read { tx in
                    let invitation = try await tx.invitation(id: id)
                    let user = try await tx.user(named: winner)
                    XCTAssertEqual(invitation?.usedBy, user?.id)
                    let lost = try await tx.user(named: loser)
                    XCTAssertNil(lost, "the refused sign-up left no account")
                }
            }
        }
    }

    func testAnInvitationGoesWithItsOrganizationAndOutlivesItsCreatorAndUser() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (alice, org) = try await StoreFixture.seedUserAndOrganization(store)
            let bob = try await store.transaction { tx in
                let bob = try await tx.insertUser(StoreFixture.newUser("bob")).id
                try await tx.insertInvitation(Self.invitation("inv-org", organization: org, createdBy: alice))
                try await tx.insertInvitation(Self.invitation("inv-alone", organization: nil, createdBy: alice))
                _ = try await tx.redeemInvitation(id: "inv-alone", by: bob, at: StoreFixture.t0)
                return bob
            }
            try await store.transaction { tx in
                _ = try await tx.deleteUser(id: alice)
                _ = try await tx.deleteUser(id: bob)
                let alone = try await tx.invitation(id: "inv-alone")
                XCTAssertNotNil(alone, "kept without the accounts")
                XCTAssertNil(alone?.createdBy)
                XCTAssertNil(alone?.usedBy)
                XCTAssertEqual(alone?.usedAt, StoreFixture.t0, "still used")
                let deleted = try await tx.deleteOrganization(id: org)
                XCTAssertTrue(deleted)
                let gone = try await tx.invitation(id: "inv-org")
                XCTAssertNil(gone, "the organization's invitation went with it")
                let listed = try await tx.invitations(organizationID: org)
                XCTAssertEqual(listed, [])
            }
        }
    }

    /// Expired invitations go, used or not, last in a batch and within its limit; open ones stay.
    func testPruningDeletesExpiredInvitationsWithinTheBatchLimit() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (alice, org) = try await StoreFixture.seedUserAndOrganization(store)
            let t0 = StoreFixture.t0
            try await store.transaction { tx in
                for index in 0..<3 {
                    try await tx.insertInvitation(
                        Self.invitation("inv-old-\(index)", organization: org, expiresAt: t0.addingTimeInterval(Double(index))))
                }
                _ = try await tx.redeemInvitation(id: "inv-old-2", by: alice, at: t0)
                try await tx.insertInvitation(Self.invitation("inv-live", organization: nil, expiresAt: t0.addingTimeInterval(500)))
                try await tx.insertRevokedAccessToken(jti: "jti-old", expiresAt: t0)
            }
            let cutoffs = PruneCutoffs(
                sessionsExpiredBefore: t0.addingTimeInterval(100), unusedRefreshTokensExpiredBefore: t0.addingTimeInterval(100),
                revocationsExpiredBefore: t0.addingTimeInterval(100))
            let first = try await store.transaction { tx in try await tx.pruneStorage(cutoffs, limit: 2) }
            XCTAssertEqual(first, PrunedRows(revokedAccessTokens: 1, invitations: 1), "the limit, shared with the other kinds")
            let second = try await store.transaction { tx in try await tx.pruneStorage(cutoffs, limit: 2) }
            XCTAssertEqual(second, PrunedRows(invitations: 2), "the used one too")
            let nothing = try await store.transaction { tx in try await tx.pruneStorage(cutoffs, limit: 2) }
            XCTAssertEqual(nothing, PrunedRows())
            try await store.read { tx in
                let left = try await tx.invitations(organizationID: org)
                XCTAssertEqual(left, [])
                let live = try await tx.invitations(organizationID: nil)
                XCTAssertEqual(live.map(\.id), ["inv-live"])
            }
        }
    }
}
