import ArgumentParser
import BrokerCore
import BrokerPostgres
import BrokerSQLite
import Foundation
import Logging

extension DatabaseCommand {
    /// `broker db copy`: a single-node installation (or another PostgreSQL database) moved into
    /// a new, empty PostgreSQL database (``DatabaseCopy``).
    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy the whole installation into a new, empty PostgreSQL database and verify the counts.",
            discussion: """
                Copies every account, organization, membership, membership request, session, refresh \
                token, revocation and audience name with its id, and the signing key ring with the server \
                secrets (the refresh-successor HMAC key among them), sealed under the key-encryption key \
                (key_encryption_key_file, or --key-encryption-key-file): tokens issued before the move \
                stay good after it. The source is read in one snapshot and the target written in one \
                transaction; then every table is counted on both sides and the counts printed. Exits \
                non-zero, having written nothing, when the target holds any row or a key ring, or when \
                the source's schema is not this broker's (run broker db migrate on it first); exits \
                non-zero after the copy when a count differs. Stop broker serve on the source first: \
                what it writes after the snapshot is not copied (a SQLite source served on this host is \
                refused while it runs). See docs/postgresql.md.
                """)
        @OptionGroup var options: GlobalOptions

        @Option(
            help: ArgumentHelp(
                "The source: a SQLite database file, or a postgres:// URL. Default: broker.sqlite3 in data_dir.",
                valueName: "path-or-url"))
        var from: String?

        @Option(help: ArgumentHelp("The target: a postgres:// URL of an empty database. Default: database_url.", valueName: "url"))
        var to: String?

        @Option(
            name: .customLong("to-password-file"),
            help: "A file holding the target's database password (one line), kept out of the URL. Default with --to: none; without: database_password_file.")
        var toPasswordFile: String?

        @Option(name: .customLong("from-password-file"), help: "A file holding a PostgreSQL source's password (one line).")
        var fromPasswordFile: String?

        @Option(
            name: .customLong("key-encryption-key-file"),
            help: "The key-encryption key the ring is sealed under in the target (key_encryption_key_file).")
        var keyEncryptionKeyFile: String?

        @Option(
            name: .customLong("from-key-encryption-key-file"),
            help: "The key-encryption key of a PostgreSQL source's ring. Default: the target's.")
        var fromKeyEncryptionKeyFile: String?

        func run() async throws {
            try await reportingErrors {
                var flags: [String: String] = [:]
                if let keyEncryptionKeyFile { flags["key_encryption_key_file"] = keyEncryptionKeyFile }
                let configuration = try await options.configuration(extraFlags: flags)
                LoggingBootstrap.run(configuration)
                let logger = Logger(label: "broker")
                let targetSettings = try self.targetSettings(configuration)
                let kek = try KeyEncryptionKey.configured(
                    in: configuration,
                    because: "the key ring is sealed in the target under a key-encryption key (--key-encryption-key-file gives one)")
                let source = try await self.openSource(configuration, kek: kek, logger: logger)
                defer { source.lock?.release() }
                let target: PostgresStore
                do {
                    target = try await PostgresStore.open(targetSettings, logger: logger)
                } catch {
                    try? await source.store.close()
                    throw error
                }
                print("copying \(source.description) into \(targetSettings.url), the key ring sealed under \(kek)")
                let report: DatabaseCopy.Report
                do {
                    report = try await DatabaseCopy(source: source.store, sourceKeyRing: source.ring, target: target, kek: kek).run()
                } catch {
                    try? await source.store.close()
                    try? await target.close()
                    throw error
                }
                try await source.store.close()
                try await target.close()
                print(Self.table(report.counts))
                guard report.isVerified else {
                    let differing = report.counts.filter { !$0.matches }.map(\.what)
                    throw ConfigurationError(
                        "the copy was committed but does not match its source ("
                            + (differing.isEmpty ? "other signing keys" : differing.joined(separator: ", "))
                            + "): was a broker still serving the source? Drop the target database, stop every broker "
                            + "on the source, and copy again")
                }
                print(
                    "every count matches: point database_url at \(targetSettings.url) and key_encryption_key_file at "
                        + "\(kek.file), then start broker serve")
            }
        }

        /// The target's settings: `--to` with `--to-password-file`, or the configured database.
        private func targetSettings(_ configuration: BrokerConfiguration) throws -> PostgresStore.Settings {
            guard let to else {
                guard let settings = try PostgresStoreSettings.from(configuration) else {
                    throw ConfigurationError("name the target: --to postgres://USER@HOST/DATABASE (or set database_url)")
                }
                return settings.forCopy
            }
            return try Self.settings(url: to, passwordFile: toPasswordFile, configuration: configuration, option: "--to")
        }

        private static func settings(
            url text: String, passwordFile: String?, configuration: BrokerConfiguration, option: String
        ) throws -> PostgresStore.Settings {
            let url = try DatabaseURL(parsing: text)
            var password: String?
            if let passwordFile {
                guard url.password == nil else {
                    throw ConfigurationError("\(option) has a password and \(option)-password-file is set: give it in one place")
                }
                password = try Self.password(file: passwordFile, option: "\(option)-password-file")
            }
            return PostgresStore.Settings(
                url: url, password: password, poolSize: 2,
                connectTimeout: .seconds(configuration.databaseConnectTimeout),
                statementTimeout: .seconds(configuration.databaseStatementTimeout)
            ).forCopy
        }

        private static func password(file path: String, option: String) throws -> String {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError("\(option) \(path) cannot be read")
            }
            let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let trimmed = line.hasSuffix("\r") ? String(line.dropLast()) : line
            guard !trimmed.isEmpty else { throw ConfigurationError("\(option) \(path) is empty") }
            return trimmed
        }

        struct Source {
            var store: any CopySource
            var ring: DatabaseCopy.SourceKeyRing
            var description: String
            /// The serving lock of a SQLite source's directory, held so that no server starts on
            /// it during the copy.
            var lock: DataDirectoryLock?
        }

        /// Opens the source once its schema is known to be this broker's (opening would migrate it).
        private func openSource(_ configuration: BrokerConfiguration, kek: KeyEncryptionKey, logger: Logger) async throws -> Source {
            if let from, from.hasPrefix("postgres://") || from.hasPrefix("postgresql://") {
                let settings = try Self.settings(url: from, passwordFile: fromPasswordFile, configuration: configuration, option: "--from")
                let version = try await PostgresStore.schemaVersion(of: settings, logger: logger)
                try Self.requireCurrentSchema(
                    version, latest: PostgresStore.latestSchemaVersion, source: "\(settings.url)",
                    migrate: "broker db migrate with database_url \(settings.url)")
                let sourceKEK = try fromKeyEncryptionKeyFile.map { try KeyEncryptionKey(file: $0, setting: "--from-key-encryption-key-file") } ?? kek
                return Source(
                    store: try await PostgresStore.open(settings, logger: logger), ring: .database(sourceKEK),
                    description: "\(settings.url) (its key ring opened with \(sourceKEK))", lock: nil)
            }
            guard fromPasswordFile == nil, fromKeyEncryptionKeyFile == nil else {
                throw ConfigurationError("--from-password-file and --from-key-encryption-key-file apply to a postgres:// source only")
            }
            let path = URL(fileURLWithPath: from ?? configuration.databasePath).standardizedFileURL.path
            guard FileManager.default.fileExists(atPath: path) else {
                throw ConfigurationError("no database at \(path): check --from, or data_dir (--data-dir, --config)")
            }
            let directory = (path as NSString).deletingLastPathComponent
            var lock: DataDirectoryLock?
            if FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(DataDirectoryLock.fileName)) {
                do {
                    lock = try DataDirectoryLock.acquire(in: directory)
                } catch {
                    throw ConfigurationError("\(path) is in use, stop broker serve before copying: \(error)")
                }
            }
            do {
                let version = try await SQLiteStore.schemaVersion(ofDatabaseAt: path)
                try Self.requireCurrentSchema(
                    version, latest: SQLiteStore.latestSchemaVersion, source: path,
                    migrate: "broker db migrate --data-dir \(directory)")
                let store = try await SQLiteStore.open(path: path, logger: logger)
                let keys = KeyDirectory(path: configuration.keysDirectory)
                return Source(
                    store: store, ring: .directory(keys), description: "\(path) with the key ring of \(keys.location)", lock: lock)
            } catch {
                lock?.release()
                throw error
            }
        }

        private static func requireCurrentSchema(_ version: Int, latest: Int, source: String, migrate: String) throws {
            guard version != latest else { return }
            if version > latest {
                throw StoreCopyRefusal(
                    "the source \(source) is at schema version \(version), newer than this broker's (\(latest)): "
                        + "copy with the broker version that last used it")
            }
            throw StoreCopyRefusal(
                "the source \(source) is at schema version \(version), this broker's is \(latest): "
                    + "bring it up to date first (\(migrate)), then copy; nothing was written")
        }

        /// The verification, one line per table: what, source count, target count.
        static func table(_ counts: [DatabaseCopy.Count]) -> String {
            let width = max(5, counts.map(\.what.count).max() ?? 0)
            func pad(_ text: String, _ length: Int, left: Bool = false) -> String {
                let padding = String(repeating: " ", count: max(0, length - text.count))
                return left ? padding + text : text + padding
            }
            var lines = [pad("what", width) + "  " + pad("source", 8, left: true) + "  " + pad("target", 8, left: true)]
            for count in counts {
                lines.append(
                    pad(count.what, width) + "  " + pad(String(count.source), 8, left: true) + "  "
                        + pad(String(count.target), 8, left: true) + (count.matches ? "" : "  DIFFERS"))
            }
            return lines.joined(separator: "\n")
        }
    }
}

extension PostgresStore.Settings {
    /// A copy writes thousands of rows per statement: a statement timeout made for requests
    /// could end it half way (the transaction would then roll back, writing nothing).
    fileprivate var forCopy: PostgresStore.Settings {
        var settings = self
        settings.statementTimeout = max(settings.statementTimeout, .seconds(60))
        return settings
    }
}
