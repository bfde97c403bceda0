import BrokerCore
import BrokerCrypto
import BrokerSync
import Foundation
import Logging
import XCTest

final class KeyRotationTests: XCTestCase {
    var root: URL!
    var clock: ManualWallClock!
    var keysPath: String { root.appendingPathComponent("keys").path }
    let policy = KeyLifecyclePolicy(prepublication: 600, retention: 3630, jwksMaxAge: 300)

    override func setUp() {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("broker-rotation-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        clock = ManualWallClock()
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: root)
    }

    func directory(_ path: String? = nil, failurePoint: (@Sendable (SecureFileStep) throws -> Void)? = nil) -> KeyDirectory {
        KeyDirectory(path: path ?? keysPath, clock: clock, failurePoint: failurePoint)
    }

    func kids(_ ring: KeyRingSnapshot, _ state: KeyState) -> [String] {
        ring.metadata(state: state, algorithm: .es256).map(\.kid)
    }

    func testRotationWaitsForThePrepublicationWindowUnlessForced() throws {
        let first = try directory().loadOrInitialize(algorithm: .es256)
        XCTAssertThrowsError(try directory().rotate(algorithm: .es256, policy: policy, force: false)) { error in
            // The core names the override; each interface spells it (`--force`, `{"force": true}`).
            XCTAssertTrue((error as? KeyRingError)?.message.pieces.contains(.term(.override("force"))) == true, "\(error)")
            XCTAssertTrue("\(error)".contains("before"), "says when it is safe: \(error)")
        }
        clock.advance(by: 599)
        XCTAssertThrowsError(try directory().rotate(algorithm: .es256, policy: policy, force: false))
        clock.advance(by: 1)
        let rotated = try directory().rotate(algorithm: .es256, policy: policy, force: false)
        XCTAssertEqual(kids(rotated, .active), kids(first, .next), "next was promoted")
        XCTAssertEqual(kids(rotated, .retired), kids(first, .active), "active was retired")
        XCTAssertEqual(kids(rotated, .next).count, 1)
        XCTAssertFalse(kids(first, .active).contains(kids(rotated, .next)[0]))
        XCTAssertEqual(rotated.version, first.version + 1)
        let retired = rotated.metadata(state: .retired, algorithm: .es256)[0]
        XCTAssertEqual(retired.retiresAt, retired.retiredAt?.addingTimeInterval(3630))
        // Every key is still published, and the reloaded ring is the same.
        XCTAssertEqual(try JSONDecoder().decode(JWKSet.self, from: Data(rotated.jwksJSON)).keys.count, 3)
        XCTAssertEqual(try directory().load()?.keys.map(\.metadata), rotated.keys.map(\.metadata))
        // Forced: the brand-new next key is promoted at once.
        let forced = try directory().rotate(algorithm: .es256, policy: policy, force: true)
        XCTAssertEqual(kids(forced, .active), kids(rotated, .next))
        XCTAssertEqual(kids(forced, .retired).count, 2)
    }

    func testRetireNowWithdrawsAKeyAndItsFile() throws {
        let first = try directory().loadOrInitialize(algorithm: .es256)
        let compromised = kids(first, .active)[0]
        let after = try directory().retireNow(kid: compromised, policy: policy)
        XCTAssertNil(after.verificationKey(kid: compromised), "its tokens stop validating")
        XCTAssertEqual(kids(after, .active), kids(first, .next), "the next key takes over at once")
        XCTAssertEqual(kids(after, .next).count, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: keysPath + "/\(compromised).pem"))
        XCTAssertFalse(String(decoding: after.jwksJSON, as: UTF8.self).contains(compromised))
        XCTAssertThrowsError(try directory().retireNow(kid: "unknown", policy: policy))
        // Withdrawing the next key replaces it.
        let next = kids(after, .next)[0]
        let again = try directory().retireNow(kid: next, policy: policy)
        XCTAssertEqual(kids(again, .active), kids(after, .active))
        XCTAssertNotEqual(kids(again, .next), [next])
    }

    func testRetiredKeysArePrunedAfterTheirRetention() throws {
        _ = try directory().loadOrInitialize(algorithm: .es256)
        clock.advance(by: 600)
        let rotated = try directory().rotate(algorithm: .es256, policy: policy, force: false)
        let retired = kids(rotated, .retired)[0]
        clock.advance(by: 3629)
        XCTAssertEqual(try directory().prune(policy: policy, signed: .unknown).map { kids($0, .retired) }, [retired])
        clock.advance(by: 1)
        let pruned = try XCTUnwrap(try directory().prune(policy: policy, signed: .unknown))
        XCTAssertEqual(kids(pruned, .retired), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: keysPath + "/\(retired).pem"))
    }

    /// A failure injected at every step of every file write of a rotation: the ring always
    /// loads, with exactly one active key, and is either the old ring or the new one.
    func testACrashAtAnyStepOfARotationLeavesALoadableRing() throws {
        for writeIndex in 0..<2 {  // the new next key, then the manifest
            for step in SecureFileStep.allCases {
                let path = root.appendingPathComponent("ring-\(writeIndex)-\(step.rawValue)").path
                let before = try directory(path).loadOrInitialize(algorithm: .es256)
                let writes = Locked(0)
                let crashing = directory(path) { current in
                    let index = writes.withLock { count -> Int in
                        if current == .afterCreateTemp { count += 1 }
                        return count - 1
                    }
                    if index == writeIndex && current == step { throw InjectedCrash() }
                }
                XCTAssertThrowsError(try crashing.rotate(algorithm: .es256, policy: policy, force: true), "\(writeIndex) \(step)")
                let after = try XCTUnwrap(try directory(path).load(), "\(writeIndex) \(step)")
                XCTAssertEqual(kids(after, .active).count, 1, "\(writeIndex) \(step)")
                let committed = writeIndex == 1 && (step == .afterRename || step == .afterFsyncDirectory)
                XCTAssertEqual(after.version, before.version + (committed ? 1 : 0), "\(writeIndex) \(step)")
                XCTAssertEqual(kids(after, .active), committed ? kids(before, .next) : kids(before, .active), "\(writeIndex) \(step)")
                // And the next rotation works from there.
                XCTAssertNoThrow(try directory(path).rotate(algorithm: .es256, policy: policy, force: true))
            }
        }
    }

    /// Rotations from several threads at once (standing in for two CLIs and the scheduler):
    /// every one is applied, in turn, and the ring never holds two active keys or loses one.
    func testConcurrentRotationsAreSerialized() throws {
        _ = try directory().loadOrInitialize(algorithm: .es256)
        let start = try XCTUnwrap(try directory().load()).version
        let path = keysPath
        let clock = self.clock!
        let policy = self.policy
        let failures = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            do {
                _ = try KeyDirectory(path: path, clock: clock).rotate(algorithm: .es256, policy: policy, force: true)
            } catch {
                failures.withLock { $0 += 1 }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, 0)
        let ring = try XCTUnwrap(try directory().load())
        XCTAssertEqual(ring.version, start + 6)
        XCTAssertEqual(kids(ring, .active).count, 1)
        XCTAssertEqual(kids(ring, .next).count, 1)
        XCTAssertEqual(kids(ring, .retired).count, 6)
        for key in ring.keys {
            XCTAssertTrue(FileManager.default.fileExists(atPath: keysPath + "/\(key.metadata.kid).pem"))
        }
    }

    func testARunningBrokerPicksUpARotationDoneElsewhereRotatesOnScheduleAndPrunes() async throws {
        let ring = KeyRing(try directory().loadOrInitialize(algorithm: .es256))
        let scheduled = KeyLifecyclePolicy(prepublication: 600, retention: 3630, jwksMaxAge: 300, rotationPeriod: 86_400)
        let maintenance = KeyRingMaintenance(
            directory: directory(), ring: ring, algorithm: .es256, policy: scheduled, clock: clock, logger: Logger(label: "test"),
            signedLifetimes: nil)
        try await maintenance.tick()
        let original = kids(ring.snapshot, .active)
        // Another process (a CLI) rotates: the running ring follows without a restart.
        clock.advance(by: 600)
        let elsewhere = try directory().rotate(algorithm: .es256, policy: policy, force: false)
        try await maintenance.tick()
        XCTAssertEqual(ring.snapshot.version, elsewhere.version)
        XCTAssertEqual(kids(ring.snapshot, .active), kids(elsewhere, .active))
        XCTAssertNotEqual(kids(ring.snapshot, .active), original)
        // A day after the last activation, the schedule rotates.
        clock.advance(by: 86_400)
        try await maintenance.tick()
        XCTAssertEqual(ring.snapshot.version, elsewhere.version + 2, "rotated, and the first retired key pruned")
        XCTAssertEqual(kids(ring.snapshot, .active), kids(elsewhere, .next))
        XCTAssertFalse(kids(ring.snapshot, .retired).contains(original[0]), "past its retention")
    }

    struct InjectedCrash: Error {}
}
