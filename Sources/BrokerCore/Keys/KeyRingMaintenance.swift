import BrokerCrypto
import Foundation
import Logging

/// What a running broker does for its key ring in the background, every `interval`:
/// - notices a ring changed by another process (`broker keys rotate` / `retire`, another
///   replica sharing the ring in the database) and switches to it, so a rotation needs no restart
///   and every replica signs with a newly activated key within `interval`;
/// - rotates on schedule when `rotationPeriod` is set (never before the `next` key has been
///   published for the pre-publication window);
/// - prunes retired keys whose retention has passed, by the lifetimes each signed (read from the
///   store through `signedLifetimes`) or else by their worst-case `retires_at`.
/// File work runs on NIO's blocking pool, never on an event loop.
///
/// ```swift
/// let maintenance = KeyRingMaintenance(storage: keys, ring: ring, algorithm: .rs256, policy: policy, clock: clock, logger: logger)
/// try await maintenance.run(interval: .seconds(2))   // until cancelled
/// ```
public final class KeyRingMaintenance: Sendable {
    public let storage: any KeyRingStorage
    public let ring: KeyRing
    public let algorithm: JWSAlgorithm
    public let policy: KeyLifecyclePolicy
    public let clock: any WallClock
    public let logger: Logger
    /// Scheduled rotations and prunes are key events: audited with the actor `scheduler`.
    public let audit: AuditTrail
    /// What the retired keys signed (the store's records); `nil`: unknown, the worst case applies.
    public let signedLifetimes: (@Sendable (_ kids: [String]) async throws -> SignedLifetimes)?

    public convenience init(
        directory: KeyDirectory, ring: KeyRing, algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy, clock: any WallClock,
        logger: Logger, audit: AuditTrail = .discarding,
        signedLifetimes: (@Sendable (_ kids: [String]) async throws -> SignedLifetimes)?
    ) {
        self.init(
            storage: directory, ring: ring, algorithm: algorithm, policy: policy, clock: clock, logger: logger, audit: audit,
            signedLifetimes: signedLifetimes)
    }

    public init(
        storage: any KeyRingStorage, ring: KeyRing, algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy, clock: any WallClock,
        logger: Logger, audit: AuditTrail = .discarding,
        signedLifetimes: (@Sendable (_ kids: [String]) async throws -> SignedLifetimes)?
    ) {
        self.signedLifetimes = signedLifetimes
        self.audit = audit
        self.storage = storage
        self.ring = ring
        self.algorithm = algorithm
        self.policy = policy
        self.clock = clock
        self.logger = logger
    }

    /// Runs ``tick()`` every `interval` until the task is cancelled.
    public func run(interval: Duration) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                break
            }
            do {
                try await tick()
            } catch {
                logger.error("key ring maintenance failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One round: reload if changed elsewhere, rotate if due, prune if due.
    public func tick() async throws {
        let storage = self.storage
        let current = ring.snapshot
        let stored = try await storage.ringVersion()
        if let stored, stored != current.version, let reloaded = try await storage.loadRing() {
            ring.replace(with: reloaded)
            logger.notice("key ring reloaded", metadata: ["version": "\(reloaded.version)"])
        }
        let now = clock.now()
        // A cheap check of the ring in memory; the storage checks again against the ring as
        // stored, so that of the processes sharing a ring only one rotates.
        if policy.scheduledRotationIsDue(ring.snapshot, algorithm: algorithm, at: now),
            let rotated = try await storage.rotateRingIfDue(algorithm: algorithm, policy: policy, at: now)
        {
            ring.replace(with: rotated)
            let kid = rotated.activeSigner(for: algorithm)?.kid ?? "-"
            logger.notice("scheduled key rotation", metadata: ["active": "\(kid)"])
            try await audit.record(.keyRotate, .success, actor: "scheduler", target: kid, reason: "scheduled")
        }
        let retired = ring.snapshot.keys.map(\.metadata).filter { $0.state == .retired }
        var signed = SignedLifetimes.unknown
        // The store is read only once a key would be due had it signed nothing.
        let mayBeDue = retired.contains { key in
            self.policy.isDue(key, at: now, signed: SignedLifetimes(readAt: now, longest: [key.kid: 0]))
        }
        if let signedLifetimes, mayBeDue {
            signed = try await signedLifetimes(retired.map(\.kid))
        }
        let due = retired.contains { self.policy.isDue($0, at: now, signed: signed) }
        if due {
            let (policy, signed) = (self.policy, signed)
            let before = Set(ring.snapshot.keys.map(\.metadata.kid))
            if let pruned = try await storage.pruneRing(policy: policy, signed: signed) {
                ring.replace(with: pruned)
                let removed = before.subtracting(pruned.keys.map(\.metadata.kid)).sorted()
                if !removed.isEmpty {
                    try await audit.record(.keyPrune, .success, actor: "scheduler", target: removed.joined(separator: ","))
                }
            }
        }
    }
}

extension KeyDirectory {
    /// The version in the manifest, read without loading any key; `nil` when there is no ring.
    public func manifestVersion() throws -> Int? {
        let file = (path as NSString).appendingPathComponent(Self.manifestName)
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        struct VersionOnly: Decodable { var version: Int }
        return try? JSONDecoder().decode(VersionOnly.self, from: data).version
    }
}
