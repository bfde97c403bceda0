import BrokerCore
import BrokerCrypto
import Foundation
import XCTest

/// The retention rule of KeyLifecyclePolicy (a retired key is published while a token it signed
/// can still be valid) and the largest number of keys the ring publishes at once, which sizes
/// HAProxy's key slots. Time is the injected clock.
final class KeyRetentionTests: XCTestCase {
    var root: URL!
    var clock: ManualWallClock!

    override func setUp() {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("broker-retention-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        clock = ManualWallClock()
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: root)
    }

    var directory: KeyDirectory { KeyDirectory(path: root.appendingPathComponent("keys").path, clock: clock) }

    func configuration(_ settings: [String: String]) throws -> BrokerConfiguration {
        var configuration = BrokerConfiguration()
        for (key, value) in settings { try configuration.set(key, to: value, source: "test") }
        try configuration.validate()
        return configuration
    }

    func published(_ ring: KeyRingSnapshot) throws -> [String] {
        try JSONDecoder().decode(JWKSet.self, from: Data(ring.jwksJSON)).keys.compactMap(\.kid)
    }

    /// A key retired by `broker keys rotate` while a server runs still signs in that server until
    /// it reloads the ring (key_reload_interval later); its last token lives the longest lifetime
    /// and is accepted clock_skew past exp. The key stays published until then, not a second less.
    func testARetiredKeyStaysPublishedUntilItsLastPossibleTokenIsInvalid() throws {
        // The longest family is not always generation 2: here the organization tokens.
        let configuration = try self.configuration([
            "access_lifetime": "7200", "generation2_access_lifetime": "1800", "admin_session_lifetime": "900",
            "clock_skew": "30", "key_reload_interval": "5", "key_prepublication": "600", "jwks_max_age": "300",
        ])
        let policy = KeyLifecyclePolicy(configuration)
        XCTAssertEqual(policy.retention, 7200 + 30 + 5)

        _ = try directory.loadOrInitialize(algorithm: .es256)
        clock.advance(by: 600)
        let rotated = try directory.rotate(algorithm: .es256, policy: policy, force: false)
        let retired = try XCTUnwrap(rotated.metadata(state: .retired, algorithm: .es256).first)
        let retiredAt = try XCTUnwrap(retired.retiredAt)
        // The server signs with it until it notices the rotation: its last token's exp, plus skew.
        let lastValidMoment = retiredAt.addingTimeInterval(TimeInterval(5 + 7200 + 30))
        clock.advance(by: lastValidMoment.timeIntervalSince(clock.now()) - 1)
        XCTAssertTrue(try published(try XCTUnwrap(try directory.prune(policy: policy, signed: .unknown))).contains(retired.kid),
            "a token it signed is still valid: the key stays published")
        // Across a restart too: the date is in the ring on disk.
        XCTAssertEqual(try directory.load()?.metadata(state: .retired, algorithm: .es256).first?.retiresAt, lastValidMoment)
        clock.advance(by: 1)
        XCTAssertFalse(try published(try XCTUnwrap(try directory.prune(policy: policy, signed: .unknown))).contains(retired.kid))
    }

    /// The default settings: generation-2 tokens (12 h) are the longest; 75 key slots.
    func testTheDefaultSettingsPublishAtMost75Keys() throws {
        let policy = KeyLifecyclePolicy(try configuration([:]))
        XCTAssertEqual(policy.retention, 43_200 + 30 + 2)
        // 1 active + 1 next + ceil((43 232 + 2) / 600) retired.
        XCTAssertEqual(policy.maximumPublishedKeys, 75)
        XCTAssertNil(KeyLifecyclePolicy(try configuration(["key_prepublication": "0", "jwks_max_age": "0"])).maximumPublishedKeys,
            "without pre-publication nothing limits rotations")
    }

    /// Rotating as often as the rules allow (every key_prepublication), with the server pruning
    /// once per key_reload_interval: the JWKS reaches the computed maximum and never exceeds it.
    func testTheMaximumIsReachedAndNeverExceeded() throws {
        let configuration = try self.configuration([
            "access_lifetime": "60", "generation2_access_lifetime": "60", "admin_session_lifetime": "60",
            "clock_skew": "0", "key_reload_interval": "3", "key_prepublication": "20", "jwks_max_age": "10",
        ])
        let policy = KeyLifecyclePolicy(configuration)
        let maximum = try XCTUnwrap(policy.maximumPublishedKeys)
        XCTAssertEqual(maximum, 2 + Int((Double(63 + 3) / 20).rounded(.up)))
        _ = try directory.loadOrInitialize(algorithm: .es256)
        var most = 0
        // The prune runs at the last moment of each reload interval: the latest a server prunes.
        for second in 1...200 {
            clock.advance(by: 1)
            var ring = try XCTUnwrap(try directory.load())
            if second % 20 == 0 {
                ring = try directory.rotate(algorithm: .es256, policy: policy, force: false)
            }
            if second % 3 == 0 {
                ring = try XCTUnwrap(try directory.prune(policy: policy, signed: .unknown))
            }
            most = max(most, try published(ring).count)
        }
        XCTAssertEqual(most, maximum)
    }
}
