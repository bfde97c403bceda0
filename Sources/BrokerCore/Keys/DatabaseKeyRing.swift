import BrokerCrypto
import BrokerSync
import Foundation
import Logging
import NIOPosix

/// The key ring kept in the database, for replicas that share nothing but it (PostgreSQL).
///
/// One stored document (``StoredKeyRing``) holds the public metadata of every key and, sealed
/// under the key-encryption key (``KeyEncryptionKey``, AES-256-GCM), its private key and every
/// server secret; the KEK's identifier is stored beside them, never the KEK. Each value is
/// sealed with what it is (`kid` and algorithm, or the secret's name) as authenticated data, so
/// nothing sealed can be moved into another's place.
///
/// Every change is a compare-and-swap on the ring's version: read the ring, decide (generating
/// keys outside any transaction), write if the version is still the one read. A writer that
/// loses reloads and decides again against the ring that won: two racing rotations make one new
/// key (the second finds a `next` key too young to promote), N replicas starting on an empty
/// database make one ring, a scheduled rotation already done by another replica is not done again.
///
/// ```swift
/// let storage = DatabaseKeyRing(store: store, kek: try KeyEncryptionKey(file: "/etc/broker/kek"))
/// let ring = KeyRing(try await storage.loadOrInitializeRing(algorithm: .rs256))
/// ```
public struct DatabaseKeyRing: KeyRingStorage {
    /// The document's format, and the start of the authenticated data of everything it seals.
    public static let format = "broker key ring v1"

    public let store: any Store
    public let kek: KeyEncryptionKey
    private let clock: any WallClock
    private let logger: Logger
    /// Changes lost to other writers before giving up (each loss means another writer made progress).
    private let attempts = 32

    public init(
        store: any Store, kek: KeyEncryptionKey, clock: any WallClock = SystemWallClock(),
        logger: Logger = Logger(label: "broker.keys")
    ) {
        self.store = store
        self.kek = kek
        self.clock = clock
        self.logger = logger
    }

    public var location: String { "the database" }

    // MARK: The stored document

    struct Document: Codable {
        var format: String
        /// ``SealingKey/identifier`` of the KEK everything below is sealed under.
        var kekID: String
        var keys: [SealedKey]
        /// Secret name → base64 of the sealed value.
        var secrets: [String: String]

        enum CodingKeys: String, CodingKey {
            case format, keys, secrets
            case kekID = "kek_id"
        }
    }

    struct SealedKey: Codable {
        var metadata: KeyMetadata
        /// Base64 of the sealed PKCS#8 PEM.
        var sealedPrivateKey: String

        enum CodingKeys: String, CodingKey {
            case metadata
            case sealedPrivateKey = "sealed_private_key"
        }
    }

    /// The ring opened: what the document holds, in clear, in memory only.
    struct Opened: Sendable {
        var version: Int
        var keys: [RingKey]
        var secrets: [String: [UInt8]]

        static let empty = Opened(version: 0, keys: [], secrets: [:])
    }

    static func keyContext(_ metadata: KeyMetadata) -> String {
        "\(format) private key kid=\(metadata.kid) alg=\(metadata.algorithm.rawValue)"
    }

    static func secretContext(_ name: String) -> String { "\(format) server secret name=\(name)" }

    func openDocument(_ stored: StoredKeyRing) throws -> Opened {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        let document: Document
        do {
            document = try decoder.decode(Document.self, from: Data(stored.document))
        } catch {
            throw KeyRingError("the key ring in the database is corrupt (not a key ring document)")
        }
        guard document.format == Self.format else {
            throw KeyRingError("the key ring in the database has the unknown format \"\(document.format.prefix(40))\"; upgrade the broker")
        }
        guard document.kekID == kek.identifier else {
            throw KeyRingError(
                "the key-encryption key in \(kek.file) is not the one the key ring was sealed with "
                    + "(ring sealed under KEK id \(document.kekID), this file is \(kek.identifier))")
        }
        var keys: [RingKey] = []
        for sealed in document.keys {
            let metadata = sealed.metadata
            guard KeyDirectory.isPlausibleKid(metadata.kid) else {
                throw KeyRingError("the key ring in the database is corrupt: invalid kid")
            }
            let pem: [UInt8]
            do {
                pem = try Sealing.open(
                    Self.decode(sealed.sealedPrivateKey), under: kek.key, context: Self.keyContext(metadata))
            } catch {
                throw KeyRingError("the sealed private key of \(metadata.kid) in the database does not open: \(error)")
            }
            let key: PrivateKey
            do {
                key = try PrivateKey(pem: String(decoding: pem, as: UTF8.self), algorithm: metadata.algorithm)
            } catch {
                throw KeyRingError("the private key of \(metadata.kid) in the database is not a \(metadata.algorithm.rawValue) key")
            }
            guard key.publicKey.thumbprint == metadata.kid else {
                throw KeyRingError("the database holds another key under \(metadata.kid) (thumbprint mismatch)")
            }
            keys.append(RingKey(metadata: metadata, privateKey: key))
        }
        var secrets: [String: [UInt8]] = [:]
        for (name, sealed) in document.secrets {
            do {
                secrets[name] = try Sealing.open(Self.decode(sealed), under: kek.key, context: Self.secretContext(name))
            } catch {
                throw KeyRingError("the sealed server secret \(name) in the database does not open: \(error)")
            }
        }
        return Opened(version: stored.version, keys: keys, secrets: secrets)
    }

    /// The document of `opened`, everything sealed afresh under `kek`.
    static func seal(_ opened: Opened, under kek: KeyEncryptionKey) throws -> [UInt8] {
        var keys: [SealedKey] = []
        for key in opened.keys {
            let sealed = Sealing.seal(
                Array(try key.privateKey.pkcs8PEM().utf8), under: kek.key, context: keyContext(key.metadata))
            keys.append(SealedKey(metadata: key.metadata, sealedPrivateKey: Data(sealed).base64EncodedString()))
        }
        var secrets: [String: String] = [:]
        for (name, value) in opened.secrets {
            secrets[name] = Data(Sealing.seal(value, under: kek.key, context: secretContext(name))).base64EncodedString()
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(Document(format: format, kekID: kek.identifier, keys: keys, secrets: secrets)))
    }

    private static func decode(_ base64: String) throws(SealingError) -> [UInt8] {
        guard let data = Data(base64Encoded: base64) else { throw .malformed }
        return Array(data)
    }

    // MARK: Compare-and-swap

    enum Decision: Sendable {
        /// Store nothing: the ring as read is the answer.
        case keep
        case store(keys: [RingKey], secrets: [String: [UInt8]])
    }

    /// Reads the ring, lets `decide` choose a change against it (on the blocking pool: key
    /// generation takes a while), and writes it if nobody changed the ring meanwhile; otherwise
    /// reads again and decides again. Returns the ring as written or, for ``Decision/keep``, as
    /// read (`nil` only when there is no ring and `decide` kept that).
    func change(
        _ what: String, sealingUnder target: KeyEncryptionKey? = nil,
        _ decide: @escaping @Sendable (Opened?) throws -> Decision
    ) async throws -> Opened? {
        let target = target ?? kek
        for _ in 0..<attempts {
            let stored = try await store.read { tx in try await tx.storedKeyRing() }
            let current = try stored.map(openDocument)
            let decision = try await NIOThreadPool.singleton.runIfActive { try decide(current) }
            guard case .store(let keys, let secrets) = decision else { return current }
            let next = Opened(version: (current?.version ?? 0) + 1, keys: keys, secrets: secrets)
            if !keys.isEmpty {
                // Refuses a ring with two active keys of one algorithm before it is stored.
                _ = try KeyRingSnapshot(version: next.version, keys: keys)
            }
            let document = try Self.seal(next, under: target)
            let expected = current?.version
            let written = try await store.transaction { tx in
                try await tx.replaceStoredKeyRing(StoredKeyRing(version: next.version, document: document), expectedVersion: expected)
            }
            if written {
                logger.debug("key ring changed", metadata: ["change": "\(what)", "version": "\(next.version)"])
                return next
            }
            logger.debug("another process changed the key ring first; deciding again", metadata: ["change": "\(what)"])
        }
        throw KeyRingError("the key ring in the database kept changing during \(what); try again")
    }

    private func snapshot(_ opened: Opened?) throws -> KeyRingSnapshot? {
        guard let opened, !opened.keys.isEmpty else { return nil }
        guard opened.keys.contains(where: { $0.metadata.state == .active }) else {
            throw KeyRingError("the key ring in the database names no active key")
        }
        return try KeyRingSnapshot(version: opened.version, keys: opened.keys)
    }

    private func noticeChange(_ before: [RingKey], _ after: [RingKey]) {
        let beforeKids = Set(before.map(\.metadata.kid))
        let afterKids = Set(after.map(\.metadata.kid))
        for key in after where !beforeKids.contains(key.metadata.kid) {
            logger.notice(
                "generated signing key",
                metadata: [
                    "kid": "\(key.metadata.kid)", "alg": "\(key.metadata.algorithm.rawValue)",
                    "state": "\(key.metadata.state.rawValue)",
                ])
        }
        for kid in beforeKids.subtracting(afterKids).sorted() {
            logger.notice("withdrew signing key", metadata: ["kid": "\(kid)"])
        }
    }

    /// Applies a lifecycle change; `nil` from `decide` keeps the ring.
    private func applying(
        _ what: String, _ decide: @escaping @Sendable ([RingKey], Date) throws -> KeyRingChange?
    ) async throws -> KeyRingSnapshot? {
        let clock = self.clock
        let before = Locked<[RingKey]>([])
        let result = try await change(what) { current in
            guard let current, !current.keys.isEmpty else { throw KeyRingError("no key ring in the database yet: start the broker once") }
            before.withLock { $0 = current.keys }
            guard let change = try decide(current.keys, KeyRingChanges.wholeSeconds(clock.now())) else { return .keep }
            return .store(keys: change.keys(from: current.keys), secrets: current.secrets)
        }
        let ring = try snapshot(result)
        if let ring { noticeChange(before.withLock { $0 }, ring.keys) }
        return ring
    }

    // MARK: KeyRingStorage

    public func loadRing() async throws -> KeyRingSnapshot? {
        let stored = try await store.read { tx in try await tx.storedKeyRing() }
        return try snapshot(try stored.map(openDocument))
    }

    public func loadOrInitializeRing(algorithm: JWSAlgorithm) async throws -> KeyRingSnapshot {
        let clock = self.clock
        let result = try await change("initialization") { current in
            let keys = current?.keys ?? []
            let now = KeyRingChanges.wholeSeconds(clock.now())
            guard let change = try KeyRingChanges.initialize(keys, algorithm: algorithm, now: now) else { return .keep }
            return .store(keys: change.keys(from: keys), secrets: current?.secrets ?? [:])
        }
        guard let ring = try snapshot(result) else { throw KeyRingError("the key ring in the database has no keys") }
        return ring
    }

    public func rotateRing(algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy, force: Bool) async throws -> KeyRingSnapshot {
        let ring = try await applying("rotation") { keys, now in
            try KeyRingChanges.rotate(keys, algorithm: algorithm, policy: policy, force: force, now: now)
        }
        guard let ring else { throw KeyRingError("no key ring in the database yet: start the broker once") }
        return ring
    }

    public func rotateRingIfDue(algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy, at now: Date) async throws -> KeyRingSnapshot? {
        let rotated = Locked(false)
        let ring = try await applying("scheduled rotation") { keys, wholeNow in
            rotated.withLock { $0 = false }
            guard policy.scheduledRotationIsDue(try KeyRingSnapshot(version: 0, keys: keys), algorithm: algorithm, at: now)
            else { return nil }
            rotated.withLock { $0 = true }
            return try KeyRingChanges.rotate(keys, algorithm: algorithm, policy: policy, force: false, now: wholeNow)
        }
        return rotated.withLock { $0 } ? ring : nil
    }

    public func retireKeyNow(kid: String, policy: KeyLifecyclePolicy) async throws -> KeyRingSnapshot {
        let ring = try await applying("retirement of \(kid)") { keys, now in try KeyRingChanges.retire(keys, kid: kid, now: now) }
        guard let ring else { throw KeyRingError("no key ring in the database yet: start the broker once") }
        return ring
    }

    public func pruneRing(policy: KeyLifecyclePolicy, signed: SignedLifetimes) async throws -> KeyRingSnapshot? {
        guard try await ringVersion() != nil else { return nil }
        return try await applying("prune") { keys, now in KeyRingChanges.prune(keys, policy: policy, signed: signed, now: now) }
    }

    public func ringVersion() async throws -> Int? {
        try await store.read { tx in try await tx.storedKeyRing()?.version }
    }

    /// Sealed in the ring's document; created by the first process to ask (compare-and-swap).
    /// `store` is this ring's own store.
    public func serverSecret(named name: String, store _: any Store) async throws -> [UInt8] {
        let candidate = SecureRandom.bytes(32)
        let result = try await change("creation of server secret \(name)") { current in
            if current?.secrets[name] != nil { return .keep }
            var secrets = current?.secrets ?? [:]
            secrets[name] = candidate
            return .store(keys: current?.keys ?? [], secrets: secrets)
        }
        guard let secret = result?.secrets[name] else { throw KeyRingError("server secret \(name) vanished") }
        return secret
    }

    // MARK: Operations

    /// Re-seals every private key and server secret under `newKEK` in one compare-and-swap (the
    /// ring's keys and states are unchanged; its version moves on). Returns the storage for the
    /// new KEK: every replica must now be given the new file (`key_encryption_key_file`).
    public func rewrap(to newKEK: KeyEncryptionKey) async throws -> DatabaseKeyRing {
        _ = try await change("rewrap under KEK \(newKEK.identifier)", sealingUnder: newKEK) { current in
            guard let current else { throw KeyRingError("no key ring in the database to rewrap") }
            return .store(keys: current.keys, secrets: current.secrets)
        }
        logger.notice(
            "re-sealed the key ring under a new key-encryption key", metadata: ["old_kek_id": "\(kek.identifier)", "kek_id": "\(newKEK.identifier)"])
        return DatabaseKeyRing(store: store, kek: newKEK, clock: clock, logger: logger)
    }

    /// Stores `ring` and `secrets` (a single-node installation's, moved to the database) sealed,
    /// unless the database already holds a ring. Returns whether it stored them.
    public func adopt(_ ring: KeyRingSnapshot, secrets: [String: [UInt8]]) async throws -> Bool {
        let opened = Opened(version: 1, keys: ring.keys, secrets: secrets)
        let document = try Self.seal(opened, under: kek)
        return try await store.transaction { tx in
            try await tx.replaceStoredKeyRing(StoredKeyRing(version: 1, document: document), expectedVersion: nil)
        }
    }
}

/// `broker keys rewrap`: only a ring in the database is sealed.
public enum KeyRingRewrap {
    public static func rewrap(_ storage: any KeyRingStorage, to newKEK: KeyEncryptionKey) async throws -> DatabaseKeyRing {
        guard let ring = storage as? DatabaseKeyRing else {
            throw KeyRingError(
                "the key ring is in \(storage.location): its private keys are files protected by their mode, not sealed "
                    + "with a key-encryption key; broker keys rewrap applies to a key ring kept in the database")
        }
        return try await ring.rewrap(to: newKEK)
    }
}
