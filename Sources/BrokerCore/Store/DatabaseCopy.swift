import Foundation

/// Moves an installation into an empty PostgreSQL database (`broker db copy`): every table's
/// rows with their ids (``StoreCopySchema``), and the key ring with the server secrets, sealed
/// under the target's key-encryption key as ``DatabaseKeyRing`` keeps them, so that every token
/// issued before the move (access tokens by their `kid`, refresh tokens and their successors by
/// the HMAC secret) stays good after it. Then it counts both sides.
///
/// The source is read in one snapshot and the target written in one transaction: a copy that
/// fails leaves the target as it was. A target holding any row or a key ring is refused.
///
/// ```swift
/// let report = try await DatabaseCopy(
///     source: sqlite, sourceKeyRing: .directory(KeyDirectory(path: "/var/lib/broker/keys")),
///     target: postgres, kek: try KeyEncryptionKey(file: "/etc/broker/kek")
/// ).run()
/// ```
public struct DatabaseCopy: Sendable {
    /// Where the source keeps its signing key ring and server secrets.
    public enum SourceKeyRing: Sendable {
        /// A single node's ring: the files of `keys_dir`; its server secrets are in the store's
        /// `server_secrets`.
        case directory(KeyDirectory)
        /// A ring in the source database, sealed under this KEK (with the server secrets).
        case database(KeyEncryptionKey)
    }

    /// One line of the verification: what was counted on each side.
    public struct Count: Sendable, Equatable {
        public var what: String
        public var source: Int
        public var target: Int
        public var matches: Bool { source == target }
    }

    public struct Report: Sendable {
        public var counts: [Count]
        /// The signing keys' ids on each side (equal after a good copy).
        public var sourceKids: [String]
        public var targetKids: [String]
        public var isVerified: Bool { counts.allSatisfy(\.matches) && sourceKids == targetKids }
    }

    public let source: any CopySource
    public let sourceKeyRing: SourceKeyRing
    public let target: any CopyTarget
    /// The target's key-encryption key (`key_encryption_key_file` of the replicas to come).
    public let kek: KeyEncryptionKey

    public init(source: any CopySource, sourceKeyRing: SourceKeyRing, target: any CopyTarget, kek: KeyEncryptionKey) {
        self.source = source
        self.sourceKeyRing = sourceKeyRing
        self.target = target
        self.kek = kek
    }

    /// Copies, then verifies (``Report/isVerified``; the caller decides how to fail).
    /// - Throws: ``StoreCopyRefusal`` when the target is not empty; ``KeyRingError`` when the
    ///   source's ring cannot be read or opened; store errors.
    public func run() async throws -> Report {
        let snapshot = try await source.copySnapshot(of: StoreCopySchema.tables)
        var keys: [RingKey] = []
        var secrets = snapshot.serverSecrets
        switch sourceKeyRing {
        case .directory(let directory):
            keys = try await directory.loadRing()?.keys ?? []
            // Every token the source issued was signed by its ring: without it they would all die.
            if keys.isEmpty, snapshot.tables.contains(where: { !$0.rows.isEmpty }) {
                throw StoreCopyRefusal(
                    "no key ring in \(directory.location), yet the database holds data: point keys_dir (--keys-dir) "
                        + "at the directory broker serve used with it; nothing was written")
            }
        case .database(let sourceKEK):
            if let stored = snapshot.keyRing {
                let opened = try DatabaseKeyRing(store: source, kek: sourceKEK).openDocument(stored)
                keys = opened.keys
                secrets.merge(opened.secrets) { _, sealed in sealed }
            }
        }
        if !keys.isEmpty {
            // Refuses a ring the target could not load (two active keys of one algorithm).
            _ = try KeyRingSnapshot(version: 1, keys: keys)
        }
        // A source that never served has neither: the first replica creates them.
        let ring: StoredKeyRing? =
            keys.isEmpty && secrets.isEmpty
            ? nil
            : StoredKeyRing(
                version: 1,
                document: try DatabaseKeyRing.seal(
                    DatabaseKeyRing.Opened(version: 1, keys: keys, secrets: secrets), under: kek))
        try await target.fillEmpty(with: snapshot.tables, identityHighWater: snapshot.identityHighWater, keyRing: ring)
        return try await verify(sourceKeys: keys, sourceSecrets: secrets)
    }

    /// Counts every copied table on both sides as they are now, and opens the target's ring
    /// under the KEK, as a replica will.
    private func verify(sourceKeys: [RingKey], sourceSecrets: [String: [UInt8]]) async throws -> Report {
        let names = StoreCopySchema.tables.map(\.name)
        let before = try await source.rowCounts(of: names)
        let after = try await target.rowCounts(of: names)
        var counts = names.map { Count(what: $0, source: before[$0] ?? 0, target: after[$0] ?? 0) }
        let stored = try await target.read { tx in try await tx.storedKeyRing() }
        let opened = try stored.map { try DatabaseKeyRing(store: target, kek: kek).openDocument($0) }
        let targetKeys = opened?.keys ?? []
        counts.append(Count(what: "signing keys", source: sourceKeys.count, target: targetKeys.count))
        counts.append(Count(what: "server secrets", source: sourceSecrets.count, target: opened?.secrets.count ?? 0))
        return Report(
            counts: counts, sourceKids: sourceKeys.map(\.metadata.kid).sorted(),
            targetKids: targetKeys.map(\.metadata.kid).sorted())
    }
}
