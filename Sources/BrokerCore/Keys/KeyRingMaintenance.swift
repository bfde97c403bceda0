import BrokerCrypto
import Foundation
import Logging
import NIOPosix

/// What a running broker does for its key ring in the background, every `interval`:
/// - notices a ring changed by another process (`broker keys rotate` / `retire`) and switches to
///   it, so a rotation needs no restart;
/// - rotates on schedule when `rotationPeriod` is set (never before the `next` key has been
///   published for the pre-publication window);
/// - prunes retired keys whose retention has passed, by the lifetimes each signed (read from the
///   store through `signedLifetimes`) or else by their worst-case `retires_at`.
/// File work runs on NIO's blocking pool, never on an event loop.
///
/// ```swift
/// let maintenance = KeyRingMaintenance(directory: keys, ring: ring, algorithm: .rs256, policy: policy, clock: clock, logger: logger)
/// try await maintenance.run(interval: .seconds(2))   // until cancelled
/// ```
public final class KeyRingMaintenance: Sendable {
    public let directory: KeyDirectory
    public let ring: KeyRing
    public let algorithm: JWSAlgorithm
    public let policy: KeyLifecyclePolicy
    public let clock: any WallClock
    public let logger: Logger
    /// NIO's process-wide pool for blocking work: building a maintainer starts nothing, and
    /// nothing is left running when it is dropped.
    private var thread: NIOThreadPool { .singleton }
    /// Scheduled rotations and prunes are key events: audited with the actor `scheduler`.
    public let audit: AuditTrail
    /// What the retired keys signed (the store's records); `nil`: unknown, the worst case applies.
    public let signedLifetimes: (@Sendable (_ kids: [String]) async throws -> SignedLifetimes)?

    public init(
        directory: KeyDirectory, ring: KeyRing, algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy, clock: any WallClock,
        logger: Logger, audit: AuditTrail = .discarding,
        signedLifetimes: (@Sendable (_ kids: [String]) async throws -> SignedLifetimes)?
    ) {
        self.signedLifetimes = signedLifetimes
        self.audit = audit
        self.directory = directory
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
        let directory = self.directory
        let current = ring.snapshot
        let onDisk = try await thread.runIfActive { try directory.manifestVersion() }
        if let onDisk, onDisk != current.version, let reloaded = try await thread.runIfActive({ try directory.load() }) {
            ring.replace(with: reloaded)
            logger.notice("key ring reloaded", metadata: ["version": "\(reloaded.version)"])
        }
        let now = clock.now()
        let snapshot = ring.snapshot
        if policy.rotationPeriod > 0,
            let active = snapshot.metadata(state: .active, algorithm: algorithm).first,
            let activated = active.activatedAt,
            now >= activated.addingTimeInterval(TimeInterval(policy.rotationPeriod)),
            let next = snapshot.metadata(state: .next, algorithm: algorithm).first,
            now >= next.createdAt.addingTimeInterval(TimeInterval(policy.prepublication))
        {
            let (algorithm, policy) = (self.algorithm, self.policy)
            let rotated = try await thread.runIfActive { try directory.rotate(algorithm: algorithm, policy: policy, force: false) }
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
            if let pruned = try await thread.runIfActive({ try directory.prune(policy: policy, signed: signed) }) {
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
