import ArgumentParser
import BrokerCore
import BrokerCrypto
import BrokerPostgres
import BrokerSQLite
import Foundation
import Logging

/// The options every subcommand accepts.
public struct GlobalOptions: ParsableArguments, Sendable {
    @Option(help: "Configuration file (YAML). Default: config/broker.yaml if it exists.")
    public var config: String?

    @Option(name: .customLong("data-dir"), help: "Directory of the SQLite database (data_dir).")
    public var dataDir: String?

    @Option(name: .customLong("keys-dir"), help: "Directory of the signing keys (keys_dir).")
    public var keysDir: String?

    public init() {}

    /// Loads the configuration with these flags (and any others a command adds) on top.
    func configuration(extraFlags: [String: String] = [:]) async throws -> BrokerConfiguration {
        var flags = extraFlags
        if let dataDir { flags["data_dir"] = dataDir }
        if let keysDir { flags["keys_dir"] = keysDir }
        return try await ConfigurationLoader(environment: ProcessInfo.processInfo.environment)
            .load(file: config, flags: flags)
    }
}

extension GlobalOptions {
    /// Opens the store of these options and runs `body` with account administration, closing
    /// everything afterwards (see ``CommandEnvironment/withAccounts(_:)``).
    @discardableResult
    func withAccounts<T>(_ body: (AccountAdministration) async throws -> T) async throws -> T {
        try await CommandEnvironment.open(self).withAccounts(body)
    }
}

/// How a command uses the store.
enum StoreUse {
    /// `broker serve`: the one server of this store.
    case serving
    /// A CLI command: works beside a running server, as an admin's request would.
    case administering
}

/// What a command needs to work on the store directly, without a server.
struct CommandEnvironment {
    let configuration: BrokerConfiguration
    /// SQLite in `data_dir`, or the PostgreSQL database of `database_url`.
    let store: any Store
    let logger: Logger
    /// Held while serving a store that lives in `data_dir` (SQLite); nil for the CLI commands
    /// and for a shared PostgreSQL database.
    let servingLock: DataDirectoryLock?

    static func open(
        _ options: GlobalOptions, extraFlags: [String: String] = [:], use: StoreUse = .administering
    ) async throws -> CommandEnvironment {
        let configuration = try await options.configuration(extraFlags: extraFlags)
        LoggingBootstrap.run(configuration)
        let logger = Logger(label: "broker")
        // data_dir also holds the audit log (by default), whichever engine stores the rest.
        try FilePermissions.ensurePrivateDirectory(configuration.dataDirectory)
        if let settings = try PostgresStoreSettings.from(configuration) {
            // Shared by design: no data_dir lock, every replica serves the same database.
            logger.info("opening the PostgreSQL store", metadata: ["database": "\(settings.url)"])
            let store = try await PostgresStore.open(settings, logger: logger)
            return CommandEnvironment(configuration: configuration, store: store, logger: logger, servingLock: nil)
        }
        // The lock guards a store that lives in data_dir (SQLite): two servers of it would each
        // keep their own throttles and timers. A store shared by design (PostgreSQL, issue 12)
        // is served by several brokers at once and must not take it: decide here by its kind.
        let lock = try use == .serving ? DataDirectoryLock.acquire(in: configuration.dataDirectory) : nil
        do {
            let store = try await SQLiteStore.open(path: configuration.databasePath, logger: logger)
            return CommandEnvironment(configuration: configuration, store: store, logger: logger, servingLock: lock)
        } catch {
            lock?.release()
            throw error
        }
    }

    /// Where this installation keeps its signing key ring: with SQLite (one host), the files of
    /// `keys_dir`. A store shared by replicas (PostgreSQL) keeps it in the database, sealed under
    /// `key_encryption_key_file`: decided here, by the store the configuration names, and only here.
    static func keyRingPlacement(for configuration: BrokerConfiguration) -> KeyRingPlacement {
        configuration.databaseURL.isEmpty ? .keysDirectory : .database
    }

    /// The key ring's storage (``keyRingPlacement(for:)``).
    func keyRingStorage() throws -> any KeyRingStorage {
        try Self.keyRingPlacement(for: configuration).storage(configuration: configuration, store: store, logger: logger)
    }

    /// Runs `body` with the key ring's storage; the store is opened (and closed after) only for a
    /// ring in the database, so that `broker keys` on a ring in `keys_dir` touches nothing else.
    static func withKeyRingStorage<T>(
        _ options: GlobalOptions, _ configuration: BrokerConfiguration, _ body: (any KeyRingStorage) async throws -> T
    ) async throws -> T {
        guard keyRingPlacement(for: configuration) == .database else {
            return try await body(KeyDirectory(path: configuration.keysDirectory))
        }
        let environment = try await open(options)
        do {
            let result = try await body(try environment.keyRingStorage())
            try await environment.store.close()
            return result
        } catch {
            try? await environment.store.close()
            throw error
        }
    }

    /// The configured audit log, for commands that change state.
    func auditTrail() -> AuditTrail {
        .file(path: configuration.auditLogPath, failureMode: configuration.auditFailureMode, logger: logger)
    }

    /// Runs `body` with account administration, closing everything afterwards.
    @discardableResult
    func withAccounts<T>(_ body: (AccountAdministration) async throws -> T) async throws -> T {
        let pool = PasswordHashingPool(
            hasher: PasswordHasher(parameters: configuration.argon2), concurrency: 1)
        // The operator's changes are audited like an admin's over HTTP (actor `cli`).
        let audit = auditTrail()
        let accounts = AccountAdministration(store: store, pool: pool, clock: SystemWallClock(), audit: audit)
        do {
            let result = try await body(accounts)
            try await pool.shutdown()
            await audit.close()
            try await store.close()
            return result
        } catch {
            try? await pool.shutdown()
            await audit.close()
            try? await store.close()
            throw error
        }
    }
}

/// Logs go to standard error, at the configured level and in the configured format (`text`:
/// one human line per event; `json`: one JSON object per line), once per process.
enum LoggingBootstrap {
    nonisolated(unsafe) private static var done = false
    private static let lock = NSLock()

    static func run(_ configuration: BrokerConfiguration) {
        run(level: configuration.logLevel, format: configuration.logFormat)
    }

    static func run(level: String, format: String = "text") {
        lock.lock()
        defer { lock.unlock() }
        guard !done else { return }
        done = true
        let parsed = Logger.Level(rawValue: level) ?? .info
        // The provider gives the lines the core services log while serving a request its id.
        LoggingSystem.bootstrap(
            { label, provider in
                var handler: any LogHandler =
                    format == "json"
                    ? JSONLogHandler.standardError(label: label, metadataProvider: provider)
                    : StreamLogHandler.standardError(label: label, metadataProvider: provider)
                handler.logLevel = parsed
                return handler
            }, metadataProvider: RequestLogMetadata.provider)
    }
}

/// Reports a failure the way a user expects from a CLI: one line on stderr, exit status 1.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch let error as BrokerError {
        FileHandle.standardError.write(Data("error: \(error.detail(spelling: CommandLineSpelling.term))\n".utf8))
        throw ExitCode.failure
    } catch let error as KeyRingError {
        FileHandle.standardError.write(Data("error: \(error.message.spelled(CommandLineSpelling.term))\n".utf8))
        throw ExitCode.failure
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// The PostgreSQL store's settings from the configuration; `nil` when `database_url` is empty
/// (SQLite).
enum PostgresStoreSettings {
    static func from(_ configuration: BrokerConfiguration) throws -> PostgresStore.Settings? {
        guard !configuration.databaseURL.isEmpty else { return nil }
        let url = try DatabaseURL(parsing: configuration.databaseURL)
        var password: String?
        if !configuration.databasePasswordFile.isEmpty {
            password = try SecretFile.readLine(configuration.databasePasswordFile, setting: "database_password_file")
        }
        return PostgresStore.Settings(
            url: url, password: password, poolSize: configuration.databasePoolSize,
            connectTimeout: .seconds(configuration.databaseConnectTimeout),
            statementTimeout: .seconds(configuration.databaseStatementTimeout))
    }
}
