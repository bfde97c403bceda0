import BrokerCrypto

/// What the audit trail records as the username a login attempt named. A name that belongs to an
/// account is recorded as it is; any other only as a keyed hash, `hmac:` and 16 hex digits of
/// HMAC-SHA256 under a per-installation secret. What people type into the username field is
/// sometimes their password: an unknown "username" must not land in the log, yet an operator
/// still sees the same text come back (the same hash).
///
/// The key is a server secret in the store (`server_secrets`, created on first start like the
/// refresh-token secret), so every broker process and the CLI on one database hash alike, and
/// the hash cannot be recomputed from a guess without the database. A colon never appears in a
/// username, so a hash is never mistaken for one.
///
/// ```swift
/// let names = try await AttemptedUsernames.load(from: store)
/// let actor = await names.auditName("hunter2-wrong-field")   // "hmac:3f9a…" unless an account has that name
/// ```
public struct AttemptedUsernames: Sendable {
    public static let secretName = "audit_username_hmac"
    public static let prefix = "hmac:"

    public let store: any Store
    private let key: StartupValue<[UInt8]>

    public init(store: any Store, key: [UInt8]) {
        self.init(store: store, key: StartupValue(Self.secretName, value: key))
    }

    /// Names hashed under a key that start-up loads (``BrokerServices/start()``).
    public init(store: any Store, key: StartupValue<[UInt8]>) {
        self.store = store
        self.key = key
    }

    /// Reads the key, creating it on first start.
    public static func load(from store: any Store) async throws -> AttemptedUsernames {
        AttemptedUsernames(store: store, key: try await loadKey(from: store))
    }

    /// The key, created on first start.
    public static func loadKey(from store: any Store) async throws -> [UInt8] {
        let candidate = SecureRandom.bytes(32)
        return try await store.transaction { tx in
            try await tx.insertServerSecretIfAbsent(named: secretName, value: candidate)
        }
    }

    /// Reads the key from where `keys` keeps server secrets (sealed beside a ring in the
    /// database), creating it on first start.
    public static func load(from store: any Store, beside keys: any KeyRingStorage) async throws -> AttemptedUsernames {
        AttemptedUsernames(store: store, key: try await keys.serverSecret(named: secretName, store: store))
    }

    /// The keyed hash of `text` as typed. Only after start-up: without the key no name may be
    /// written at all, so a call before it stops the process.
    public func pseudonym(_ text: String) -> String {
        let key: [UInt8]
        do {
            key = try self.key.get()
        } catch {
            preconditionFailure("\(error)")
        }
        let mac = Digest.hmacSHA256(key: key, message: Array(text.utf8))
        return Self.prefix + mac.prefix(8).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }

    /// The account's username when `name` names one (as stored: `ALICE` typed is `alice` in the
    /// log, so that filtering by actor finds every attempt), else its ``pseudonym(_:)``. When
    /// the store cannot say, the pseudonym: the log never holds a name that might not be one.
    public func auditName(_ name: String) async -> String {
        let account = try? await store.read { tx in try await tx.user(named: name)?.username }
        return account ?? pseudonym(name)
    }
}
