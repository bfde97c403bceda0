import BrokerCore
import BrokerCrypto
import BrokerSQLite
import BrokerSync
import Foundation
import Logging
import XCTest

/// A retired key stays published as long as the tokens it actually signed can be valid
/// (retired_at + the longest lifetime it signed + clock_skew + key_reload_interval), never longer
/// than the worst case of the configuration. The default settings: organization tokens 3600 s,
/// generation-2 tokens 43 200 s, clock_skew 30 s, key_reload_interval 2 s. Time is the injected
/// clock; the ring is rotated as `broker keys rotate` does, in the directory, and the running
/// broker's maintenance reloads and prunes it.
final class SignedLifetimeRetentionTests: XCTestCase {
    var harness: CoreHarness!
    var github: StubGitHub!
    let leeway: TimeInterval = 30 + 2

    override func setUp() async throws {
        let stub = StubGitHub()
        github = stub
        harness = try await CoreHarness.make(githubAPI: stub) { configuration in
            configuration.githubOrganizations = [
                GitHubOrganizationMapping(organization: "sliderule", githubOrganization: "SlideRuleEarth", teams: [:])
            ]
            configuration.homeOrganization = "sliderule"
        }
        try await harness.seed()  // alice member of org1
        stub.add(
            token: "pat-carol",
            .init(login: "carol", id: 3, organizations: ["SlideRuleEarth": .init(state: "active", role: "member")]))
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    func maintenance(store: (any Store)? = nil) -> KeyRingMaintenance {
        let services = harness.services
        let (store, clock) = (store ?? services.store, harness.clock)
        return KeyRingMaintenance(
            directory: harness.keyDirectory, ring: services.keyRing, algorithm: .es256, policy: services.keyPolicy,
            clock: clock, logger: Logger(label: "test"),
            signedLifetimes: { kids in try await SignedLifetimes.read(kids: kids, from: store, clock: clock) })
    }

    var activeKid: String { harness.services.keyRing.snapshot.activeSigner(for: .es256)!.kid }

    func published() throws -> [String] {
        try JSONDecoder().decode(JWKSet.self, from: Data(harness.services.keyRing.snapshot.jwksJSON)).keys.compactMap(\.kid)
    }

    /// Rotates as another process would (`broker keys rotate`), once the next key may sign, and
    /// lets the server notice. Returns the retired key's retired_at.
    func rotateElsewhere(_ maintenance: KeyRingMaintenance) async throws -> Date {
        harness.clock.advance(by: 600)
        let retiring = activeKid
        let ring = try harness.keyDirectory.rotate(algorithm: .es256, policy: harness.services.keyPolicy, force: false)
        try await maintenance.tick()
        let retired = try XCTUnwrap(ring.metadata(state: .retired, algorithm: .es256).first { $0.kid == retiring })
        return try XCTUnwrap(retired.retiredAt)
    }

    /// Ticks at `date` (whole seconds after the clock) and says whether `kid` is still published.
    func isPublished(_ kid: String, at date: Date, _ maintenance: KeyRingMaintenance) async throws -> Bool {
        harness.clock.advance(by: date.timeIntervalSince(harness.clock.now()))
        try await maintenance.tick()
        return try published().contains(kid)
    }

    func testAKeyThatSignedOnlyOrganizationTokensIsUnpublishedAnHourAfterItsRetirement() async throws {
        let maintenance = self.maintenance()
        let kid = activeKid
        let bundle = try await harness.services.orgTokens.login(username: "alice", password: CoreHarness.password, organization: "org1")
        XCTAssertEqual(bundle.accessLifetime, 3600)
        let retiredAt = try await rotateElsewhere(maintenance)
        let worstCase = try XCTUnwrap(harness.services.keyRing.snapshot.keys.first { $0.metadata.kid == kid }?.metadata.retiresAt)
        XCTAssertEqual(worstCase, retiredAt.addingTimeInterval(43_200 + leeway), "ring.json keeps the worst case")

        let lastValid = retiredAt.addingTimeInterval(3600 + leeway)
        let stillPublished = try await isPublished(kid, at: lastValid.addingTimeInterval(-1), maintenance)
        XCTAssertTrue(stillPublished, "a token it signed (or a server that had not reloaded signed) is still valid")
        let publishedAfter = try await isPublished(kid, at: lastValid, maintenance)
        XCTAssertFalse(publishedAfter, "its 1 h tokens have expired: not kept for the 12 h of generation 2")
    }

    func testAKeyThatSignedAGeneration2TokenStaysPublishedTwelveHours() async throws {
        let maintenance = self.maintenance()
        let kid = activeKid
        _ = try await harness.services.orgTokens.login(username: "alice", password: CoreHarness.password, organization: "org1")
        let issued = try await harness.services.github!.generation2Login(githubToken: "pat-carol", method: .githubPAT)
        XCTAssertEqual(issued.kid, kid)
        XCTAssertEqual(issued.claims.expiresAt - issued.claims.issuedAt, 43_200)
        let retiredAt = try await rotateElsewhere(maintenance)

        let afterAnHour = try await isPublished(kid, at: retiredAt.addingTimeInterval(3600 + leeway + 1), maintenance)
        XCTAssertTrue(afterAnHour)
        let lastValid = retiredAt.addingTimeInterval(43_200 + leeway)
        let stillPublished = try await isPublished(kid, at: lastValid.addingTimeInterval(-1), maintenance)
        XCTAssertTrue(stillPublished)
        let publishedAfter = try await isPublished(kid, at: lastValid, maintenance)
        XCTAssertFalse(publishedAfter)
    }

    /// The key made active by a rotation and retired by the next, before it signed anything.
    func testAKeyThatSignedNothingIsUnpublishedAfterClockSkewAndReloadInterval() async throws {
        let maintenance = self.maintenance()
        _ = try await rotateElsewhere(maintenance)
        let unused = activeKid
        let retiredAt = try await rotateElsewhere(maintenance)
        let stillPublished = try await isPublished(unused, at: retiredAt.addingTimeInterval(leeway - 1), maintenance)
        XCTAssertTrue(stillPublished, "a server that has not reloaded may still sign with it")
        let publishedAfter = try await isPublished(unused, at: retiredAt.addingTimeInterval(leeway), maintenance)
        XCTAssertFalse(publishedAfter)
    }

    /// The record is in the database, not only in the process: a broker started on the same
    /// store after a restart keeps the key as long as its tokens.
    func testTheRecordSurvivesARestart() async throws {
        let kid = activeKid
        _ = try await harness.services.orgTokens.login(username: "alice", password: CoreHarness.password, organization: "org1")
        try await harness.services.store.close()
        let reopened = try await SQLiteStore.open(
            path: harness.services.configuration.databasePath, logger: Logger(label: "test"))
        let maintenance = self.maintenance(store: reopened)
        do {
            let read = try await SignedLifetimes.read(kids: [kid, "unknown-kid"], from: reopened, clock: harness.clock)
            XCTAssertEqual(read.longest, [kid: 3600, "unknown-kid": 0])
            let retiredAt = try await rotateElsewhere(maintenance)
            let afterLeeway = try await isPublished(kid, at: retiredAt.addingTimeInterval(leeway + 1), maintenance)
            XCTAssertTrue(afterLeeway, "it signed a 1 h token: not unpublished as if it had signed nothing")
            let publishedAfter = try await isPublished(kid, at: retiredAt.addingTimeInterval(3600 + leeway), maintenance)
            XCTAssertFalse(publishedAfter)
        } catch {
            try await reopened.close()
            throw error
        }
        try await reopened.close()
    }

    /// An upgrade: the keys of a ring written by a broker that did not record lifetimes may have
    /// signed 12 h tokens without a record. They keep the worst case.
    func testKeysFromARingWrittenBeforeTheRecordsKeepTheWorstCase() async throws {
        let manifest = URL(fileURLWithPath: harness.keyDirectory.path).appendingPathComponent(KeyDirectory.manifestName)
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: manifest)) as? [String: Any])
        let keys = try XCTUnwrap(json["keys"] as? [[String: Any]])
        XCTAssertTrue(keys.allSatisfy { $0["signed_lifetimes_recorded"] as? Bool == true })
        json["keys"] = keys.map { $0.filter { $0.key != "signed_lifetimes_recorded" } }
        json["version"] = try XCTUnwrap(json["version"] as? Int) + 1
        try JSONSerialization.data(withJSONObject: json).write(to: manifest)
        let maintenance = self.maintenance()
        try await maintenance.tick()
        let old = activeKid
        let retiredAt = try await rotateElsewhere(maintenance)

        let afterAnHour = try await isPublished(old, at: retiredAt.addingTimeInterval(3600 + leeway + 1), maintenance)
        XCTAssertTrue(afterAnHour, "no record, yet it may have signed a 12 h token")
        let lastValid = retiredAt.addingTimeInterval(43_200 + leeway)
        let stillPublished = try await isPublished(old, at: lastValid.addingTimeInterval(-1), maintenance)
        XCTAssertTrue(stillPublished)
        let publishedAfter = try await isPublished(old, at: lastValid, maintenance)
        XCTAssertFalse(publishedAfter)
    }

    /// One write per key and longer lifetime, not one per token; a failed write signs nothing
    /// and is not remembered.
    func testTheLogWritesOncePerKeyAndLongerLifetime() async throws {
        let writes = Locked<[String]>([])
        let failing = Locked(false)
        struct Refused: Error {}
        let log = SignedLifetimeLog { kid, lifetime in
            if failing.withLock({ $0 }) { throw Refused() }
            writes.withLock { $0.append("\(kid)=\(lifetime)") }
        }
        for _ in 0..<3 { try await log.willSign(kid: "a", lifetime: 3600) }
        try await log.willSign(kid: "a", lifetime: 1800)
        try await log.willSign(kid: "a", lifetime: 43_200)
        try await log.willSign(kid: "a", lifetime: 3600)
        try await log.willSign(kid: "b", lifetime: 3600)
        XCTAssertEqual(writes.withLock { $0 }, ["a=3600", "a=43200", "b=3600"])
        failing.withLock { $0 = true }
        do {
            try await log.willSign(kid: "c", lifetime: 60)
            XCTFail("a failed record must stop the signature")
        } catch is Refused {}
        failing.withLock { $0 = false }
        try await log.willSign(kid: "c", lifetime: 60)
        XCTAssertEqual(writes.withLock { $0 }.last, "c=60", "retried, not remembered as recorded")
    }

    /// A token every process has recorded for a key can be read as "signed nothing" only up to
    /// the moment of the read: a key that looks due by a read made before its date is not due.
    func testRecordsAreReliedOnOnlyUpToTheMomentTheyWereRead() throws {
        let policy = harness.services.keyPolicy
        let retiredAt = Date(timeIntervalSince1970: 1_000_000)
        let key = KeyMetadata(
            kid: "k", algorithm: .es256, state: .retired, createdAt: retiredAt, activatedAt: retiredAt, retiredAt: retiredAt,
            retiresAt: retiredAt.addingTimeInterval(43_200 + leeway), signedLifetimesRecorded: true)
        let now = retiredAt.addingTimeInterval(leeway + 60)
        let earlyRead = SignedLifetimes(readAt: retiredAt.addingTimeInterval(leeway - 1), longest: ["k": 0])
        XCTAssertFalse(policy.isDue(key, at: now, signed: earlyRead))
        XCTAssertTrue(policy.isDue(key, at: now, signed: SignedLifetimes(readAt: now, longest: ["k": 0])))
        XCTAssertFalse(policy.isDue(key, at: now, signed: .unknown), "unknown: the worst case")
        XCTAssertTrue(policy.isDue(key, at: key.retiresAt!, signed: .unknown))
    }
}
