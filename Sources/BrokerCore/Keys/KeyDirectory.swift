import BrokerCrypto
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The keys directory on disk: a manifest (`ring.json`) naming every key and its state, and one
/// PKCS#8 PEM file per key (`<kid>.pem`). The manifest is the commit point: a key file that it
/// does not name never signed anything and is ignored, so a crash at any step leaves a directory
/// the broker starts from.
///
/// Files are written through ``SecureFileWriter`` (temp file with `O_EXCL` and mode 0600, fsync,
/// rename, fsync of the directory). Blocking: call it off the event loop.
public struct KeyDirectory: Sendable {
    public static let manifestName = "ring.json"
    /// Files the broker does not own and leaves alone.
    static let foreignFiles: Set<String> = ["README.md", ".gitignore", ".gitkeep"]
    /// The lock file serializing changes (`flock`); mode 0600 like every file the broker writes.
    static let lockName = ".lock"

    public let path: String
    private let writer: SecureFileWriter
    private let clock: any WallClock
    private let logger: Logger

    public init(
        path: String, clock: any WallClock = SystemWallClock(), logger: Logger = Logger(label: "broker.keys"),
        failurePoint: (@Sendable (SecureFileStep) throws -> Void)? = nil
    ) {
        self.path = path
        self.clock = clock
        self.logger = logger
        self.writer = SecureFileWriter(directory: path, failurePoint: failurePoint)
    }

    struct Manifest: Codable {
        var version: Int
        var keys: [KeyMetadata]
    }

    /// Loads the ring, refusing loose permissions and corrupt files. `nil` when there is no ring yet.
    public func load() throws -> KeyRingSnapshot? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let manifestPath = filePath(Self.manifestName)
        guard FileManager.default.fileExists(atPath: manifestPath) else { return nil }
        try FilePermissions.checkPrivate(directory: path)
        let manifest = try readManifest()
        var keys: [RingKey] = []
        for metadata in manifest.keys {
            keys.append(try loadKey(metadata))
        }
        guard !keys.isEmpty, keys.contains(where: { $0.metadata.state == .active }) else {
            throw KeyRingError("\(manifestPath) names no active key")
        }
        return try KeyRingSnapshot(version: manifest.version, keys: keys)
    }

    /// Loads the ring, creating the directory and the keys it lacks: on first start an active key
    /// and a next key (published, not signing) for `algorithm`, so that a later rotation is safe
    /// from day one. Also when `algorithm` changes: the new algorithm gets its pair, the old keys
    /// stay published.
    public func loadOrInitialize(algorithm: JWSAlgorithm) throws -> KeyRingSnapshot {
        if !FileManager.default.fileExists(atPath: path) {
            try FilePermissions.ensurePrivateDirectory(path)
        }
        return try withExclusiveLock { try initializeLocked(algorithm: algorithm) }
    }

    private func initializeLocked(algorithm: JWSAlgorithm) throws -> KeyRingSnapshot {
        let existing = try prepareDirectory()
        var metadata = existing?.keys.map(\.metadata) ?? []
        var keys = existing?.keys ?? []
        guard let change = try KeyRingChanges.initialize(keys, algorithm: algorithm, now: wholeSecondsNow()) else {
            if let existing { return existing }
            throw KeyRingError("\(path): nothing to initialize")
        }
        let created = change.added
        // Key files first; the manifest that names them is written last and commits the change.
        for key in created {
            try writer.write(Array(try key.privateKey.pkcs8PEM().utf8), to: keyFileName(key.metadata.kid))
        }
        metadata += created.map(\.metadata)
        keys += created
        let version = (existing?.version ?? 0) + 1
        try writeManifest(Manifest(version: version, keys: metadata))
        for key in created {
            logger.notice(
                "generated signing key",
                metadata: ["kid": "\(key.metadata.kid)", "alg": "\(algorithm.rawValue)", "state": "\(key.metadata.state.rawValue)"])
        }
        return try KeyRingSnapshot(version: version, keys: keys)
    }

    /// Checks the directory and returns the ring it already holds, if any.
    private func prepareDirectory() throws -> KeyRingSnapshot? {
        let removed = try SecureFileWriter.removeStaleTemporaries(in: path)
        if !removed.isEmpty {
            logger.warning("removed temporary files left by an interrupted write", metadata: ["files": "\(removed)"])
        }
        if let ring = try load() { return ring }
        // No ring yet: nothing secret is in the directory, so tightening it is safe (a fresh git
        // checkout creates `keys/` with mode 0755).
        if (try? FilePermissions.checkPrivate(directory: path)) == nil {
            try FilePermissions.tightenDirectory(path)
            logger.notice("restricted the keys directory to its owner (mode 0700)", metadata: ["path": "\(path)"])
        }
        return nil
    }

    // MARK: Lifecycle

    /// Promotes the `next` key of `algorithm` to active, retires the active one (published for
    /// at most `policy.retention` more: its `retires_at`), and generates a new `next`. Refused,
    /// unless `force`, while the `next` key is younger than `policy.prepublication`: some gateway
    /// may not have it yet.
    public func rotate(algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy, force: Bool) throws -> KeyRingSnapshot {
        try withExclusiveLock {
            guard let ring = try load() else { throw KeyRingError("no key ring in \(path) yet: start the broker once") }
            let change = try KeyRingChanges.rotate(
                ring.keys, algorithm: algorithm, policy: policy, force: force, now: wholeSecondsNow())
            return try commit(ring, change)
        }
    }

    /// Withdraws a key at once (a compromised key): it leaves the JWKS and its tokens stop
    /// validating. If it was active, the `next` key takes over immediately (whatever its age)
    /// and a new `next` is generated; if it was `next`, a new `next` replaces it.
    public func retireNow(kid: String, policy: KeyLifecyclePolicy) throws -> KeyRingSnapshot {
        try withExclusiveLock {
            guard let ring = try load() else { throw KeyRingError("no key ring in \(path)") }
            return try commit(ring, try KeyRingChanges.retire(ring.keys, kid: kid, now: wholeSecondsNow()))
        }
    }

    /// Removes retired keys whose retention has passed: by what each signed, as far as `signed`
    /// knows (``KeyLifecyclePolicy/isDue(_:at:signed:)``), else by their worst-case `retires_at`.
    /// Returns the ring (unchanged if nothing was due).
    public func prune(policy: KeyLifecyclePolicy, signed: SignedLifetimes) throws -> KeyRingSnapshot? {
        try withExclusiveLock {
            guard let ring = try load() else { return nil }
            guard let change = KeyRingChanges.prune(ring.keys, policy: policy, signed: signed, now: wholeSecondsNow())
            else { return ring }
            return try commit(ring, change)
        }
    }

    /// Writes new key files, then the manifest (the commit point), then removes withdrawn key
    /// files. A crash before the manifest leaves the old ring; after it, the new one (a leftover
    /// key file of a withdrawn key is never named again and is removed by the next change).
    private func commit(_ ring: KeyRingSnapshot, _ change: KeyRingChange) throws -> KeyRingSnapshot {
        let (metadata, added, withdrawn) = (change.metadata, change.added, change.removed)
        for key in added {
            try writer.write(Array(try key.privateKey.pkcs8PEM().utf8), to: keyFileName(key.metadata.kid))
        }
        let all = metadata + added.map(\.metadata)
        let version = ring.version + 1
        try writeManifest(Manifest(version: version, keys: all))
        for kid in withdrawn {
            try writer.remove(keyFileName(kid))
        }
        for key in added {
            logger.notice("generated signing key", metadata: ["kid": "\(key.metadata.kid)", "alg": "\(key.metadata.algorithm.rawValue)", "state": "next"])
        }
        for kid in withdrawn {
            logger.notice("withdrew signing key", metadata: ["kid": "\(kid)"])
        }
        return try KeyRingSnapshot(version: version, keys: change.keys(from: ring.keys))
    }

    /// Serializes every change of the ring across threads and processes (`flock` on `.lock`),
    /// so that two rotations never produce two active keys or lose one.
    func withExclusiveLock<T>(_ body: () throws -> T) throws -> T {
        let lockPath = filePath(".lock")
        let descriptor = open(lockPath, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else {
            throw KeyRingError("cannot open the key ring lock \(lockPath): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else {
                throw KeyRingError("cannot lock the key ring: \(String(cString: strerror(errno)))")
            }
        }
        defer { flock(descriptor, LOCK_UN) }
        return try body()
    }

    private func wholeSecondsNow() -> Date { KeyRingChanges.wholeSeconds(clock.now()) }

    static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    private func loadKey(_ metadata: KeyMetadata) throws -> RingKey {
        let file = filePath(keyFileName(metadata.kid))
        try FilePermissions.checkPrivate(file: file)
        guard let data = FileManager.default.contents(atPath: file), let pem = String(data: data, encoding: .utf8) else {
            throw KeyRingError("cannot read key file \(file) named in \(Self.manifestName)")
        }
        let key: PrivateKey
        do {
            key = try PrivateKey(pem: pem, algorithm: metadata.algorithm)
        } catch {
            throw KeyRingError("key file \(file) is corrupt or not a \(metadata.algorithm.rawValue) private key")
        }
        guard key.publicKey.thumbprint == metadata.kid else {
            throw KeyRingError("key file \(file) does not hold the key \(metadata.kid) (thumbprint mismatch)")
        }
        return RingKey(metadata: metadata, privateKey: key)
    }

    private func readManifest() throws -> Manifest {
        let file = filePath(Self.manifestName)
        try FilePermissions.checkPrivate(file: file)
        guard let data = FileManager.default.contents(atPath: file) else {
            throw KeyRingError("cannot read \(file)")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        let manifest: Manifest
        do {
            manifest = try decoder.decode(Manifest.self, from: data)
        } catch {
            throw KeyRingError("\(file) is corrupt (not a key ring manifest)")
        }
        for key in manifest.keys where !Self.isPlausibleKid(key.kid) {
            throw KeyRingError("\(file) is corrupt: invalid kid")
        }
        return manifest
    }

    private func writeManifest(_ manifest: Manifest) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writer.write(Array(try encoder.encode(manifest)), to: Self.manifestName)
    }

    /// A kid is a base64url SHA-256 thumbprint; anything else could be a path.
    static func isPlausibleKid(_ kid: String) -> Bool {
        kid.utf8.count == 43 && Base64URL.decode(kid) != nil
    }

    private func keyFileName(_ kid: String) -> String { "\(kid).pem" }

    private func filePath(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
}
