import BrokerCore
import Foundation
import XCTest

/// The rest of ``StoreTransaction`` on every engine: audience names, accounts' roles, versions
/// and deletion, membership requests, session revocation, revoked access tokens, signed
/// lifetimes and pruning (its limit and its order).
extension StoreConformanceTests {
    func testAudienceNamesHaveOneHolderAndHeldNamesBlockDeletingTheOrganization() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (physics, chemistry) = try await store.transaction { tx in
                let physics = try await tx.insertOrganization(name: "physics", clusterName: "phys", createdAt: StoreFixture.t0)
                let chemistry = try await tx.insertOrganization(name: "chemistry", clusterName: "chem", createdAt: StoreFixture.t0)
                try await tx.insertAudienceName(AudienceName(name: "phys", holder: .organization(id: physics.id, use: .cluster)))
                try await tx.insertAudienceName(
                    AudienceName(name: "phys-extra", holder: .organization(id: physics.id, use: .policyAudience)))
                try await tx.insertAudienceName(AudienceName(name: "monitoring", holder: .service))
                try await tx.setTokenPolicy(
                    organizationID: chemistry.id, to: OrganizationTokenPolicy(accessLifetime: 600, audiences: ["chem", "monitoring"]))
                return (physics, chemistry)
            }
            await self.assertThrows(.duplicate("audience name phys")) {
                try await store.transaction { tx in
                    try await tx.insertAudienceName(AudienceName(name: "phys", holder: .organization(id: chemistry.id, use: .cluster)))
                }
            }
            await self.assertThrows(.notFound("organization")) {
                try await store.transaction { tx in
                    try await tx.insertAudienceName(AudienceName(name: "ghost", holder: .organization(id: 999, use: .cluster)))
                }
            }
            try await store.transaction { tx in
                let names = try await tx.audienceNames().map(\.name)
                XCTAssertEqual(names, ["monitoring", "phys", "phys-extra"])
                let byAudience = try await tx.organizationUsingAudience("monitoring")
                XCTAssertEqual(byAudience?.name, "chemistry", "a policy audience")
                let byCluster = try await tx.organizationUsingAudience("phys")
                XCTAssertEqual(byCluster?.name, "physics")
                let nobody = try await tx.organizationUsingAudience("phys-extra")
                XCTAssertNil(nobody, "held, but in no policy")
                let policy = try await tx.organization(id: chemistry.id)?.tokenPolicy
                XCTAssertEqual(policy, OrganizationTokenPolicy(accessLifetime: 600, audiences: ["chem", "monitoring"]))
                let listed = try await tx.deleteServiceAudience("monitoring")
                XCTAssertFalse(listed, "a policy lists it")
                try await tx.updateAudienceNameUse("phys-extra", organizationID: physics.id, to: .teamCluster)
                let updated = try await tx.audienceName("phys-extra")
                XCTAssertEqual(updated, AudienceName(name: "phys-extra", holder: .organization(id: physics.id, use: .teamCluster)))
                try await tx.deleteAudienceNames(organizationID: physics.id, use: .teamCluster, keeping: [])
                let gone = try await tx.audienceName("phys-extra")
                XCTAssertNil(gone)
                try await tx.setTokenPolicy(organizationID: chemistry.id, to: OrganizationTokenPolicy(audiences: []))
                let empty = try await tx.organization(id: chemistry.id)?.tokenPolicy.audiences
                XCTAssertEqual(empty, [], "an empty list is not no list")
                let deleted = try await tx.deleteServiceAudience("monitoring")
                XCTAssertTrue(deleted)
            }
            await self.assertThrows(.notFound("audience name nope of organization \(physics.id)")) {
                try await store.transaction { tx in
                    try await tx.updateAudienceNameUse("nope", organizationID: physics.id, to: .cluster)
                }
            }
            do {
                _ = try await store.transaction { tx in try await tx.deleteOrganization(id: physics.id) }
                XCTFail("an organization holding names was deleted")
            } catch StoreError.engine(let message) {
                XCTAssertTrue(message.contains("FOREIGN KEY"), message)
            }
            try await store.transaction { tx in
                try await tx.reserveAudienceNames(organizationID: physics.id, formerOrganization: "physics")
                let deleted = try await tx.deleteOrganization(id: physics.id)
                XCTAssertTrue(deleted)
                let reserved = try await tx.audienceName("phys")
                XCTAssertEqual(reserved, AudienceName(name: "phys", holder: .reserved(formerOrganization: "physics")))
                let released = try await tx.deleteReservedAudienceName("phys")
                XCTAssertEqual(released, reserved)
                let again = try await tx.deleteReservedAudienceName("phys")
                XCTAssertNil(again)
            }
        }
    }

    func testRolesVersionsPagingAndDeletionOfAccounts() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            try await store.transaction { tx in
                for name in ["bob", "carol", "dave"] { _ = try await tx.insertUser(StoreFixture.newUser(name)) }
                try await tx.setGlobalRole(userID: user, to: .admin)
                let versions = try await tx.advanceSessionVersion(userID: user)
                XCTAssertEqual(versions.session.rawValue, 2)
                XCTAssertEqual(versions.credential.rawValue, 1)
                let credential = try await tx.advanceCredentialVersion(userID: user)
                XCTAssertEqual(credential.credential.rawValue, 2)
                try await tx.upsertMembership(
                    Membership(organizationID: org, userID: user, role: .owner, isActive: true, createdAt: StoreFixture.t0))
                try await tx.insertRefreshFamily(StoreFixture.family("fam-alice", user: user, org: org))
                try await tx.setGitHubLink(userID: user, login: "Alice-GH", id: 42)
            }
            try await store.read { tx in
                let alice = try await tx.user(id: user)
                XCTAssertEqual(alice?.globalRole, .admin)
                XCTAssertEqual(alice?.versions.session.rawValue, 2)
                let byLogin = try await tx.user(githubLogin: "ALICE-gh")
                XCTAssertEqual(byLogin?.id, user, "GitHub logins compare case-insensitively")
                let page = try await tx.users(afterID: user, limit: 2).map(\.username)
                XCTAssertEqual(page, ["bob", "carol"])
                let none = try await tx.users(afterID: user, limit: 0)
                XCTAssertEqual(none, [])
            }
            await self.assertThrows(.duplicate("GitHub login alice-gh")) {
                _ = try await store.transaction { tx in
                    try await tx.insertUser(
                        NewUser(username: "erin", passwordHash: nil, createdAt: StoreFixture.t0, githubLogin: "alice-gh"))
                }
            }
            await self.assertThrows(.notFound("user 999")) {
                _ = try await store.transaction { tx in try await tx.advanceSessionVersion(userID: 999) }
            }
            await self.assertThrows(.notFound("user 999")) {
                try await store.transaction { tx in try await tx.setGlobalRole(userID: 999, to: nil) }
            }
            try await store.transaction { tx in
                let deleted = try await tx.deleteUser(id: user)
                XCTAssertTrue(deleted)
                let again = try await tx.deleteUser(id: user)
                XCTAssertFalse(again)
                let members = try await tx.members(organizationID: org)
                XCTAssertEqual(members, [], "memberships go with the account")
                let family = try await tx.refreshFamily(id: "fam-alice")
                XCTAssertNil(family, "and its sessions")
            }
        }
    }

    func testMembershipRequestsAreUniqueAndListedOldestFirst() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (alice, org) = try await StoreFixture.seedUserAndOrganization(store)
            let (bob, zed) = try await store.transaction { tx in
                (try await tx.insertUser(StoreFixture.newUser("bob")).id, try await tx.insertUser(StoreFixture.newUser("zed")).id)
            }
            try await store.transaction { tx in
                try await tx.insertMembershipRequest(organizationID: org, userID: zed, at: StoreFixture.t0)
                try await tx.insertMembershipRequest(organizationID: org, userID: bob, at: StoreFixture.t0.addingTimeInterval(5))
                try await tx.insertMembershipRequest(organizationID: org, userID: alice, at: StoreFixture.t0)
            }
            await self.assertThrows(.duplicate("membership request of user \(bob) to organization \(org)")) {
                try await store.transaction { tx in
                    try await tx.insertMembershipRequest(organizationID: org, userID: bob, at: StoreFixture.t0)
                }
            }
            await self.assertThrows(.notFound("organization 999")) {
                try await store.transaction { tx in
                    try await tx.insertMembershipRequest(organizationID: 999, userID: bob, at: StoreFixture.t0)
                }
            }
            try await store.transaction { tx in
                let requests = try await tx.membershipRequests(organizationID: org).map(\.username)
                XCTAssertEqual(requests, ["alice", "zed", "bob"], "oldest first, then by name")
                let one = try await tx.membershipRequest(organizationID: org, userID: bob)
                XCTAssertEqual(one?.requestedAt, StoreFixture.t0.addingTimeInterval(5))
                let deleted = try await tx.deleteMembershipRequest(organizationID: org, userID: bob)
                XCTAssertTrue(deleted)
                let again = try await tx.deleteMembershipRequest(organizationID: org, userID: bob)
                XCTAssertFalse(again)
            }
        }
    }

    func testRevokingEverySessionCountsOnlyLiveOnesAndKeepsEarlierRevocations() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            let now = StoreFixture.t0.addingTimeInterval(1_000)
            try await store.transaction { tx in
                try await tx.insertRefreshFamily(StoreFixture.family("live", user: user, org: org))
                var expired = StoreFixture.family("expired", user: user, org: org)
                expired.expiresAt = StoreFixture.t0.addingTimeInterval(10)
                try await tx.insertRefreshFamily(expired)
                try await tx.insertRefreshFamily(
                    RefreshFamily(
                        id: "broker", userID: user, scope: .broker, authenticatedAt: StoreFixture.t0.addingTimeInterval(1),
                        expiresAt: StoreFixture.t0.addingTimeInterval(86_400), authenticationMethods: ["pwd"],
                        accountVersions: .initial))
                try await tx.revokeRefreshFamily(id: "broker", at: StoreFixture.t0.addingTimeInterval(500), reason: "logout")
            }
            let revoked = try await store.transaction { tx in
                try await tx.revokeRefreshFamilies(userID: user, at: now, reason: "password_reset")
            }
            XCTAssertEqual(revoked, 1, "only the live session")
            try await store.read { tx in
                let families = try await tx.refreshFamilies(userID: user)
                XCTAssertEqual(families.map(\.id), ["broker", "expired", "live"], "newest login first, then by id")
                let byID = Dictionary(uniqueKeysWithValues: families.map { ($0.id, $0) })
                XCTAssertEqual(byID["live"]?.revocationReason, "password_reset")
                XCTAssertEqual(byID["live"]?.revokedAt, now)
                XCTAssertEqual(byID["broker"]?.revocationReason, "logout", "the first revocation is kept")
                XCTAssertEqual(byID["broker"]?.scope, .broker)
                XCTAssertNil(byID["expired"]?.revokedAt)
                XCTAssertEqual(byID["live"]?.authenticationMethods, ["pwd", "otp"])
            }
        }
    }

    func testRevokedAccessTokensAndSignedLifetimes() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            try await store.transaction { tx in
                try await tx.insertRevokedAccessToken(jti: "a", expiresAt: StoreFixture.t0)
                try await tx.insertRevokedAccessToken(jti: "a", expiresAt: StoreFixture.t0.addingTimeInterval(99))
                try await tx.insertRevokedAccessToken(jti: "b", expiresAt: StoreFixture.t0.addingTimeInterval(100))
                try await tx.recordSignedLifetime(kid: "k1", lifetime: 600)
                try await tx.recordSignedLifetime(kid: "k1", lifetime: 300)
                try await tx.recordSignedLifetime(kid: "k2", lifetime: -5)
            }
            try await store.transaction { tx in
                let revokedA = try await tx.isAccessTokenRevoked(jti: "a")
                XCTAssertTrue(revokedA)
                try await tx.pruneRevokedAccessTokens(before: StoreFixture.t0.addingTimeInterval(50))
                let prunedA = try await tx.isAccessTokenRevoked(jti: "a")
                XCTAssertFalse(prunedA, "the first insert's expiry counts")
                let keptB = try await tx.isAccessTokenRevoked(jti: "b")
                XCTAssertTrue(keptB)
                let lifetimes = try await tx.longestSignedLifetimes(kids: ["k1", "k2", "k3"])
                XCTAssertEqual(lifetimes, ["k1": 600, "k2": 0])
                let none = try await tx.longestSignedLifetimes(kids: [])
                XCTAssertEqual(none, [:])
            }
        }
    }

    /// Pruning stays within its limit, in its order: tokens of ended sessions, then expired
    /// unused tokens, then expired sessions left without tokens, then expired revocations.
    func testPruningDeletesAtMostTheLimitInItsOrder() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (user, org) = try await StoreFixture.seedUserAndOrganization(store)
            let t0 = StoreFixture.t0
            try await store.transaction { tx in
                var expired = StoreFixture.family("expired", user: user, org: org)
                expired.expiresAt = t0.addingTimeInterval(10)
                try await tx.insertRefreshFamily(expired)
                try await tx.insertRefreshFamily(StoreFixture.family("revoked", user: user, org: org))
                try await tx.revokeRefreshFamily(id: "revoked", at: t0, reason: "logout")
                try await tx.insertRefreshFamily(StoreFixture.family("live", user: user, org: org))
                for (hash, family, expiry, used) in [
                    ("e1", "expired", 10.0, true), ("e2", "expired", 10.0, false), ("r1", "revoked", 3_600.0, true),
                    ("l1", "live", 20.0, false), ("l2", "live", 20.0, true), ("l3", "live", 3_600.0, false),
                ] {
                    try await tx.insertRefreshToken(
                        RefreshTokenRecord(
                            tokenHash: hash, familyID: family, issuedAt: t0, expiresAt: t0.addingTimeInterval(expiry),
                            usedAt: used ? t0 : nil))
                }
                try await tx.insertRevokedAccessToken(jti: "old", expiresAt: t0)
                try await tx.insertRevokedAccessToken(jti: "new", expiresAt: t0.addingTimeInterval(10_000))
            }
            let cutoffs = PruneCutoffs(
                sessionsExpiredBefore: t0.addingTimeInterval(100), unusedRefreshTokensExpiredBefore: t0.addingTimeInterval(100),
                revocationsExpiredBefore: t0.addingTimeInterval(100))
            let first = try await store.transaction { tx in try await tx.pruneStorage(cutoffs, limit: 2) }
            XCTAssertEqual(first, PrunedRows(refreshTokens: 2), "the limit, spent on the first kind")
            let second = try await store.transaction { tx in try await tx.pruneStorage(cutoffs, limit: 3) }
            XCTAssertEqual(second, PrunedRows(refreshTokens: 2, sessions: 1), "the rest of the ended tokens, then l1, then the session")
            let third = try await store.transaction { tx in try await tx.pruneStorage(cutoffs, limit: 10) }
            XCTAssertEqual(third, PrunedRows(revokedAccessTokens: 1))
            try await store.read { tx in
                let families = try await tx.refreshFamilies(userID: user).map(\.id).sorted()
                XCTAssertEqual(families, ["live", "revoked"], "a revoked session stays until it expires")
                for (hash, kept) in [("l2", true), ("l3", true), ("l1", false), ("r1", false), ("e1", false)] {
                    let token = try await tx.refreshToken(hash: hash)
                    XCTAssertEqual(token != nil, kept, hash)
                }
                let new = try await tx.isAccessTokenRevoked(jti: "new")
                XCTAssertTrue(new)
            }
        }
    }
}
