import BrokerCore
import BrokerCrypto
import Foundation
import XCTest

final class OrgTokenServiceTests: SeededCoreTestCase {
    var service: OrgTokenService { harness.services.orgTokens }

    func testLoginIssuesTokenWithEveryClaim() async throws {
        let bundle = try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        let claims = try harness.services.verifier.verify(bundle.access, audience: "org1")
        let now = Int64(harness.clock.now().timeIntervalSince1970)
        XCTAssertEqual(claims.issuer, "http://127.0.0.1:8080")
        XCTAssertEqual(claims.subject, "alice")
        XCTAssertEqual(claims.audience, ["org1"])
        XCTAssertEqual(claims.organization, "org1")
        XCTAssertEqual(claims.organizationRoles, ["member"])
        XCTAssertEqual(claims.issuedAt, now)
        XCTAssertEqual(claims.notBefore, now)
        XCTAssertEqual(claims.expiresAt, now + 3600)
        XCTAssertEqual(claims.authenticatedAt, now)
        XCTAssertEqual(claims.authenticationMethods, ["pwd"])
        XCTAssertEqual(claims.identityProvider, "local")
        XCTAssertEqual(claims.tokenType, "access")
        XCTAssertEqual(claims.username, "alice")
        XCTAssertEqual(claims.tokenID.count, 22)
        XCTAssertEqual(bundle.accessLifetime, 3600)
        XCTAssertEqual(bundle.refreshLifetime, 86400)
        XCTAssertEqual(bundle.refresh.count, 43, "256 bits in base64url")
        // Header per RFC 9068.
        let header = try CompactJWS.parse(bundle.access).header
        XCTAssertEqual(header["typ"], .string("at+jwt"))
        XCTAssertEqual(header["alg"], .string("ES256"))
        XCTAssertEqual(header["kid"], .string(harness.services.keyRing.snapshot.activeSigner(for: .es256)!.kid))
    }

    func testClusterNameIsTheAudienceAndRolesAreImplied() async throws {
        try await harness.services.accounts.addMember(organization: "org2", username: "bob", role: .owner, by: .operator)
        let bundle = try await service.login(username: "bob", password: CoreHarness.password, organization: "org2")
        let claims = try harness.services.verifier.verify(bundle.access, audience: "cluster-two")
        XCTAssertEqual(claims.audience, ["cluster-two"])
        XCTAssertEqual(claims.organization, "org2")
        XCTAssertEqual(claims.organizationRoles, ["owner", "member"])
    }

    func testWrongPasswordUnknownUserDisabledUser() async throws {
        await XCTAssertBrokerError(.invalidCredentials) {
            try await self.service.login(username: "alice", password: "wrong password!!", organization: "org1")
        }
        await XCTAssertBrokerError(.invalidCredentials) {
            try await self.service.login(username: "nobody", password: CoreHarness.password, organization: "org1")
        }
        await XCTAssertBrokerError(.invalidCredentials) {
            try await self.service.login(username: "alice\u{200D}", password: CoreHarness.password, organization: "org1")
        }
        try await harness.services.accounts.setActive("alice", false, by: .operator)
        await XCTAssertBrokerError(.accountDisabled) {
            try await self.service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        }
    }

    func testUnknownOrganizationAndNonMemberAre403() async throws {
        await XCTAssertBrokerError(.unknownOrganization) {
            try await self.service.login(username: "alice", password: CoreHarness.password, organization: "nope")
        }
        await XCTAssertBrokerError(.notAMember) {
            try await self.service.login(username: "bob", password: CoreHarness.password, organization: "org1")
        }
        XCTAssertEqual(ErrorCode.notAMember.httpStatus, 403)
        XCTAssertEqual(ErrorCode.unknownOrganization.httpStatus, 403)
    }

    func testRefreshRotatesAndKeepsAuthTime() async throws {
        let first = try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        harness.clock.advance(by: 600)
        let second = try await service.refresh(first.refresh)
        XCTAssertNotEqual(second.refresh, first.refresh)
        XCTAssertNotEqual(second.access, first.access)
        XCTAssertEqual(second.claims.authenticatedAt, first.claims.authenticatedAt)
        XCTAssertEqual(second.claims.issuedAt, first.claims.issuedAt + 600)
        let third = try await service.refresh(second.refresh)
        XCTAssertNotEqual(third.refresh, second.refresh)
    }

    func testReuseAfterGraceRevokesTheWholeFamily() async throws {
        let first = try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        let second = try await service.refresh(first.refresh)
        harness.clock.advance(by: 3)  // past the 2 s grace window
        await XCTAssertBrokerError(.refreshTokenReused) { try await self.service.refresh(first.refresh) }
        // The legitimate successor dies with its family.
        await XCTAssertBrokerError(.invalidRefreshToken) { try await self.service.refresh(second.refresh) }
    }

    func testConcurrentRefreshInsideGraceGetsTheSameSuccessor() async throws {
        let first = try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        let service = self.service
        async let a = service.refresh(first.refresh)
        async let b = service.refresh(first.refresh)
        let (one, two) = try await (a, b)
        XCTAssertEqual(one.refresh, two.refresh)
        harness.clock.advance(by: 2)
        let again = try await service.refresh(first.refresh)
        XCTAssertEqual(again.refresh, one.refresh, "still inside the 2 s window")
        // The successor itself is a fresh, usable token.
        let next = try await service.refresh(one.refresh)
        XCTAssertNotEqual(next.refresh, one.refresh)
    }

    func testGraceWindowEndsOnceTheSuccessorIsUsed() async throws {
        // R0 -> R1 -> R2 within the grace window: whoever still holds R0 must not get R1 again,
        // nor the client's live R2.
        let r0 = try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        let r1 = try await service.refresh(r0.refresh)
        harness.clock.advance(by: 1)
        let r2 = try await service.refresh(r1.refresh)
        await XCTAssertBrokerError(.refreshTokenReused) { try await self.service.refresh(r0.refresh) }
        await XCTAssertBrokerError(.invalidRefreshToken) { try await self.service.refresh(r2.refresh) }
        await XCTAssertBrokerError(.invalidRefreshToken) { try await self.service.refresh(r1.refresh) }
    }

    func testGraceWindowStillServesAnUnusedSuccessorAfterAnotherRace() async throws {
        let r0 = try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        let r1 = try await service.refresh(r0.refresh)
        harness.clock.advance(by: 1)
        // A race on R1 inside the window gets R2 twice while R2 is unused; once R2 is used, R1 is reuse.
        let r2 = try await service.refresh(r1.refresh)
        let r2Again = try await service.refresh(r1.refresh)
        XCTAssertEqual(r2.refresh, r2Again.refresh, "R1's duplicate inside the window, R2 unused")
        _ = try await service.refresh(r2.refresh)
        await XCTAssertBrokerError(.refreshTokenReused) { try await self.service.refresh(r1.refresh) }
    }

    func testGraceWindowOfZeroTreatsEveryReuseAsTheft() async throws {
        let strict = try await CoreHarness.make { $0.refreshReuseGrace = 0 }
        try await strict.seed()
        let service = strict.services.orgTokens
        let first = try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        _ = try await service.refresh(first.refresh)
        strict.clock.advance(by: 1)
        await XCTAssertBrokerError(.refreshTokenReused) { try await service.refresh(first.refresh) }
        try await strict.shutdown()
    }

    func testRefreshTokenExpiresAfterRefreshLifetime() async throws {
        let first = try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        harness.clock.advance(by: 86_400)
        await XCTAssertBrokerError(.invalidRefreshToken) { try await self.service.refresh(first.refresh) }
    }

    func testNoFamilyOutlivesTheSessionMaximum() async throws {
        var bundle = try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        // Refresh every 20 hours: each token is fresh, but the family ages.
        for _ in 0..<8 {
            harness.clock.advance(by: 20 * 3600)
            bundle = try await service.refresh(bundle.refresh)
            XCTAssertLessThanOrEqual(bundle.refreshLifetime, 86_400)
        }
        // 160 h elapsed: 8 h of the 168 h cap remain, and the refresh token says so.
        XCTAssertEqual(bundle.refreshLifetime, 8 * 3600)
        harness.clock.advance(by: 8 * 3600)
        await XCTAssertBrokerError(.sessionExpired) { try await self.service.refresh(bundle.refresh) }
    }

    func testLostMembershipIs403AndDisabledUserIs401OnRefresh() async throws {
        let first = try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        try await harness.services.accounts.removeMember(organization: "org1", username: "alice", by: .operator)
        await XCTAssertBrokerError(.notAMember) { try await self.service.refresh(first.refresh) }
        // The refused refresh did not consume the token.
        try await harness.services.accounts.addMember(organization: "org1", username: "alice", role: .member, by: .operator)
        let second = try await service.refresh(first.refresh)
        try await harness.services.accounts.setActive("alice", false, by: .operator)
        await XCTAssertBrokerError(.accountDisabled) { try await self.service.refresh(second.refresh) }
    }

    func testBlacklistRevokesTheFamily() async throws {
        let first = try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        let second = try await service.refresh(first.refresh)
        try await service.revoke(second.refresh)
        await XCTAssertBrokerError(.invalidRefreshToken) { try await self.service.refresh(second.refresh) }
        await XCTAssertBrokerError(.invalidRefreshToken) { try await self.service.revoke("not-a-token") }
    }

    func testMembershipStatus() async throws {
        let bundle = try await service.login(username: "alice", password: CoreHarness.password, organization: "org1")
        let inOrg1 = try await service.membershipStatus(bearer: bundle.access, organization: "org1")
        XCTAssertTrue(inOrg1)
        let inOrg2 = try await service.membershipStatus(bearer: bundle.access, organization: "org2")
        XCTAssertFalse(inOrg2)
        let inNothing = try await service.membershipStatus(bearer: bundle.access, organization: "missing")
        XCTAssertFalse(inNothing)
        await XCTAssertBrokerError(.invalidToken) {
            try await self.service.membershipStatus(bearer: "garbage", organization: "org1")
        }
        harness.clock.advance(by: 3600 + 31)
        await XCTAssertBrokerError(.invalidToken) {
            try await self.service.membershipStatus(bearer: bundle.access, organization: "org1")
        }
    }

    func testMigratedDjangoHashIsUpgradedToArgon2idOnLogin() async throws {
        // Django's PBKDF2 of "correct horse battery staple" with salt "seasalt2", 1000 iterations.
        let django = "pbkdf2_sha256$1000$seasalt2$" + Data(pbkdf2(CoreHarness.password, salt: "seasalt2", 1000)).base64EncodedString()
        let report = try await DjangoUserImport(store: harness.services.store, clock: harness.clock).run(
            Data(#"[{"model":"auth.user","pk":7,"fields":{"username":"carol","password":"\#(django)","is_active":true}}]"#.utf8))
        XCTAssertEqual(report.imported, ["carol"])
        try await harness.services.accounts.addMember(organization: "org1", username: "carol", role: .member, by: .operator)
        _ = try await service.login(username: "carol", password: CoreHarness.password, organization: "org1")
        let stored = try await harness.services.store.transaction { try await $0.user(named: "carol") }
        XCTAssertTrue(stored?.passwordHash?.hasPrefix("$argon2id$") == true)
        XCTAssertEqual(stored?.id, 7, "Django's primary key is kept as the user id")
        // And the new hash works.
        _ = try await service.login(username: "carol", password: CoreHarness.password, organization: "org1")
    }

    /// PBKDF2-HMAC-SHA256 through Python's hashlib (an independent implementation).
    private func pbkdf2(_ password: String, salt: String, _ iterations: Int) -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            "import hashlib,sys; sys.stdout.write(hashlib.pbkdf2_hmac('sha256', sys.argv[1].encode(), sys.argv[2].encode(), int(sys.argv[3])).hex())",
            password, salt, String(iterations),
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        try? process.run()
        process.waitUntilExit()
        let hex = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }
}

final class DjangoUserImportTests: XCTestCase {
    func testPrimaryKeysAreKeptWhenFreeAndInactiveUsersArriveDisabled() async throws {
        let harness = try await CoreHarness.make()
        try await harness.seed()  // alice = 1, bob = 2
        let dump = """
            [{"model":"auth.user","pk":2,"fields":{"username":"dora","password":"pbkdf2_sha256$1000$s$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","is_active":true}},
             {"model":"auth.user","pk":40,"fields":{"username":"eve","password":"!x","is_active":false}},
             {"model":"auth.user","pk":41,"fields":{"username":"bob","password":"!x","is_active":true}}]
            """
        let report = try await DjangoUserImport(store: harness.services.store, clock: harness.clock).run(Data(dump.utf8))
        XCTAssertEqual(report.imported, ["dora", "eve"])
        XCTAssertEqual(report.skipped.map(\.name), ["bob"])
        let (dora, eve) = try await harness.services.store.transaction { tx in
            (try await tx.user(named: "dora"), try await tx.user(named: "eve"))
        }
        XCTAssertNotEqual(dora?.id, 2, "pk 2 belongs to bob: dora gets a fresh id")
        XCTAssertEqual(eve?.id, 40)
        XCTAssertEqual(eve?.isActive, false)
        XCTAssertNil(eve?.passwordHash, "an unusable Django password means no password")
        let fresh = try await harness.services.accounts.addUser("frank", password: nil, by: .operator)
        XCTAssertGreaterThan(fresh.id, 40, "ids continue after imported keys")
        try await harness.shutdown()
    }
}
