import BrokerCrypto
import Foundation
import Logging
import NIOPosix

/// Where the signing key ring lives and how it changes: the files of ``KeyDirectory`` (one host,
/// SQLite) or the database, sealed (``DatabaseKeyRing``: replicas that share nothing else). Every
/// change is serialized against every other process using the same ring (a `flock`, or a
/// compare-and-swap on the ring's version) and applies the rules of ``KeyLifecyclePolicy``.
/// The server secrets live beside the ring: in the store's `server_secrets` for the files, sealed
/// in the ring's document for the database.
///
/// ```swift
/// let storage = try KeyRingPlacement.keysDirectory.storage(configuration: config, store: store, logger: logger)
/// let ring = KeyRing(try await storage.loadOrInitializeRing(algorithm: .rs256))
/// ```
public protocol KeyRingStorage: Sendable {
    /// Where the ring is, for messages ("keys_dir ./keys", "the database").
    var location: String { get }
    /// The ring, or `nil` when there is none yet.
    func loadRing() async throws -> KeyRingSnapshot?
    /// The ring, created with an active and a next key of `algorithm` if it lacks them.
    func loadOrInitializeRing(algorithm: JWSAlgorithm) async throws -> KeyRingSnapshot
    /// Promotes the next key (see ``KeyDirectory/rotate(algorithm:policy:force:)``).
    func rotateRing(algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy, force: Bool) async throws -> KeyRingSnapshot
    /// A scheduled rotation: rotates if one is still due against the ring as it is now
    /// (``KeyLifecyclePolicy/scheduledRotationIsDue(_:algorithm:at:)``); `nil` when it is not
    /// (another process rotated first).
    func rotateRingIfDue(algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy, at now: Date) async throws -> KeyRingSnapshot?
    /// Withdraws a key at once (see ``KeyDirectory/retireNow(kid:policy:)``).
    func retireKeyNow(kid: String, policy: KeyLifecyclePolicy) async throws -> KeyRingSnapshot
    /// Removes retired keys whose time has come (see ``KeyDirectory/prune(policy:signed:)``).
    func pruneRing(policy: KeyLifecyclePolicy, signed: SignedLifetimes) async throws -> KeyRingSnapshot?
    /// The ring's version, cheaper than ``loadRing()``, for noticing a change made elsewhere.
    func ringVersion() async throws -> Int?
    /// The named random server secret shared by every process (the refresh-successor HMAC key,
    /// the audit pseudonym key), created on first use: the same value for every process however
    /// many race to create it. `store` is the broker's store.
    func serverSecret(named name: String, store: any Store) async throws -> [UInt8]
}

/// Where a broker keeps its key ring.
public enum KeyRingPlacement: String, Sendable, Equatable {
    /// Files in `keys_dir` (the SQLite default: one host).
    case keysDirectory
    /// In the database, sealed under `key_encryption_key_file` (replicas on PostgreSQL).
    case database

    /// The storage for this placement. The only place that decides between the two.
    /// - Throws: ``ConfigurationError`` for a database ring without a usable
    ///   `key_encryption_key_file`.
    public func storage(
        configuration: BrokerConfiguration, store: any Store, clock: any WallClock = SystemWallClock(),
        logger: Logger = Logger(label: "broker.keys")
    ) throws -> any KeyRingStorage {
        switch self {
        case .keysDirectory:
            return KeyDirectory(path: configuration.keysDirectory, clock: clock, logger: logger)
        case .database:
            let kek = try KeyEncryptionKey.configured(in: configuration, because: "the key ring is kept in the database, sealed")
            return DatabaseKeyRing(store: store, kek: kek, clock: clock, logger: logger)
        }
    }
}

extension KeyDirectory: KeyRingStorage {
    public var location: String { "keys_dir \(path)" }

    public func loadRing() async throws -> KeyRingSnapshot? {
        try await Self.blocking { try self.load() }
    }

    public func loadOrInitializeRing(algorithm: JWSAlgorithm) async throws -> KeyRingSnapshot {
        try await Self.blocking { try self.loadOrInitialize(algorithm: algorithm) }
    }

    public func rotateRing(algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy, force: Bool) async throws -> KeyRingSnapshot {
        try await Self.blocking { try self.rotate(algorithm: algorithm, policy: policy, force: force) }
    }

    public func rotateRingIfDue(algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy, at now: Date) async throws -> KeyRingSnapshot? {
        try await Self.blocking {
            guard let ring = try self.load(), policy.scheduledRotationIsDue(ring, algorithm: algorithm, at: now) else { return nil }
            return try self.rotate(algorithm: algorithm, policy: policy, force: false)
        }
    }

    public func retireKeyNow(kid: String, policy: KeyLifecyclePolicy) async throws -> KeyRingSnapshot {
        try await Self.blocking { try self.retireNow(kid: kid, policy: policy) }
    }

    public func pruneRing(policy: KeyLifecyclePolicy, signed: SignedLifetimes) async throws -> KeyRingSnapshot? {
        try await Self.blocking { try self.prune(policy: policy, signed: signed) }
    }

    public func ringVersion() async throws -> Int? {
        try await Self.blocking { try self.manifestVersion() }
    }

    /// Beside a ring in files, server secrets stay in the store's `server_secrets`, as they were.
    public func serverSecret(named name: String, store: any Store) async throws -> [UInt8] {
        let candidate = SecureRandom.bytes(32)
        return try await store.transaction { tx in
            try await tx.insertServerSecretIfAbsent(named: name, value: candidate)
        }
    }

    /// File work and key generation run on NIO's blocking pool, never on an event loop.
    private static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }
}
