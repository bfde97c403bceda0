import BrokerCrypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The key-encryption key (KEK) of a key ring kept in the database: 32 random bytes, base64, in
/// the file `key_encryption_key_file` names (`openssl rand -base64 32`). It seals every private
/// key and server secret the database holds (``Sealing``); it is never stored there. Its
/// ``identifier`` is, so that a replica given another file says so instead of failing obscurely.
///
/// The file must be readable by its owner only, like the keys directory (or, owned by root, by
/// its group too: ``isPrivate(mode:owner:reader:)``): a KEK others could read must be replaced
/// (`broker keys rewrap`). A symbolic link is followed (a Kubernetes Secret
/// volume is made of links) and the mode of its target is checked.
///
/// ```swift
/// let kek = try KeyEncryptionKey(file: configuration.keyEncryptionKeyFile)
/// print(kek.identifier)   // "3f9a0c1d2e4b5a69"
/// ```
public struct KeyEncryptionKey: Sendable, CustomStringConvertible {
    public let key: SealingKey
    /// The file it was read from, for messages.
    public let file: String

    public init(key: SealingKey, file: String) {
        self.key = key
        self.file = file
    }

    /// The KEK `key_encryption_key_file` names. `purpose` says why one is needed, in the error
    /// when the setting is empty.
    /// - Throws: ``ConfigurationError``, as ``init(file:setting:)``.
    public static func configured(in configuration: BrokerConfiguration, because purpose: String) throws -> KeyEncryptionKey {
        guard !configuration.keyEncryptionKeyFile.isEmpty else {
            throw ConfigurationError(
                "\(purpose): set key_encryption_key_file (environment BROKER_KEY_ENCRYPTION_KEY_FILE) to a file holding "
                    + "32 random bytes in base64, the same file on every replica (openssl rand -base64 32 > kek; chmod 600 kek)")
        }
        return try KeyEncryptionKey(file: configuration.keyEncryptionKeyFile)
    }

    /// Reads the KEK from `file`. - Throws: ``ConfigurationError`` naming the file and what is
    /// wrong with it (never its contents).
    public init(file: String, setting: String = "key_encryption_key_file") throws {
        guard !file.isEmpty else {
            throw ConfigurationError("\(setting) is empty: set it to a file holding the key-encryption key (openssl rand -base64 32)")
        }
        var info = stat()
        guard stat(file, &info) == 0 else {
            let code = errno
            if code == ENOENT { throw ConfigurationError("\(setting) \(file) does not exist") }
            throw ConfigurationError("\(setting) \(file) cannot be read: \(String(cString: strerror(code)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ConfigurationError("\(setting) \(file) is not a regular file")
        }
        guard Self.isPrivate(mode: UInt32(info.st_mode), owner: info.st_uid, reader: geteuid()) else {
            var octal = String(UInt32(info.st_mode) & 0o7777, radix: 8)
            while octal.count < 4 { octal = "0" + octal }
            throw ConfigurationError(
                "\(setting) \(file) is accessible to group or others (mode \(octal)): whoever could read it can open every "
                    + "private key in the database; make it the broker's alone (chmod 600) and, if it may have been read, "
                    + "replace it with broker keys rewrap --new-kek")
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigurationError("\(setting) \(file) cannot be read (permission denied?)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let bytes = Data(base64Encoded: text) else {
            throw ConfigurationError("\(setting) \(file) is not base64: it must hold 32 random bytes in base64 (openssl rand -base64 32)")
        }
        guard bytes.count == SealingKey.byteCount else {
            throw ConfigurationError(
                "\(setting) \(file) holds \(bytes.count) bytes, not \(SealingKey.byteCount): generate it with openssl rand -base64 32")
        }
        self.init(key: try SealingKey(bytes: Array(bytes)), file: file)
    }

    /// Whether a KEK file of this mode and owner is private enough, PostgreSQL's rule for its
    /// TLS key: the reader's own file must be 0600 or stricter; a file root owns, read by
    /// another user, may also be readable by its group (0640) — a Kubernetes Secret volume gives
    /// a non-root pod its files that way (owner root, group `fsGroup`), and only root can change
    /// who is in the group. Nothing for others, ever.
    public static func isPrivate(mode: UInt32, owner: uid_t, reader: uid_t) -> Bool {
        if owner == 0 && reader != 0 { return mode & 0o037 == 0 }
        return mode & 0o077 == 0
    }

    /// Names the key without revealing it (``SealingKey/identifier``).
    public var identifier: String { key.identifier }

    public var description: String { "key-encryption key \(identifier) (\(file))" }
}
