import BrokerCore
import BrokerSync
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// The PostgreSQL implementation of ``Store``: one database shared by every broker replica and
/// command line, through a pool of connections (postgres-nio's `PostgresClient`).
///
/// ```swift
/// let store = try await PostgresStore.open(
///     PostgresStore.Settings(url: try DatabaseURL(parsing: "postgres://broker:pw@db:5432/broker")), logger: logger)
/// let alice = try await store.transaction { tx in try await tx.user(named: "alice") }
/// try await store.close()
/// ```
///
/// **Isolation.** Every ``transaction(_:)`` runs at `SERIALIZABLE`: the outcome of concurrent
/// transactions, on one replica or many, is that of some order of them one after the other, the
/// guarantee SQLite gives by running one writer at a time. PostgreSQL keeps it by aborting a
/// transaction that would break it (SQLSTATE 40001) or that deadlocked (40P01); the store then
/// rolls back and runs the body again, up to ``Settings/maximumAttempts`` times with a short
/// jittered backoff. A body must therefore be re-runnable: only store calls inside, no outside
/// effect (an audit line, a file) before it returns. ``read(_:)`` runs at `REPEATABLE READ READ
/// ONLY`: one consistent snapshot, never waiting for writers, a write inside throws.
///
/// **Failed statements.** As in SQLite, a statement that fails on a constraint (a duplicate, a
/// missing reference) is undone alone (a savepoint around it) and the transaction goes on if the
/// body catches the error.
///
/// **Bounded waits.** Waiting for a connection is bounded by the connect timeout, every statement
/// by the statement timeout (on the server, `statement_timeout`; and on the client, which closes
/// a connection whose server does not answer in time). A database that cannot be reached throws
/// ``StoreError/unavailable(_:)``; the pool reconnects by itself when it is back. Once a wait for
/// a connection has failed while the pool had room for one, the database is presumed down
/// (``ConnectionBreaker``): transactions are refused at once, and every
/// ``Settings/downRetryInterval`` one of them probes it again with a direct connection, so that a
/// replica answers 503 quickly while it is down and serves again as soon as it is back. A probe
/// that connects replaces the pool (``PostgresPool``), whose own reconnection attempts may be a
/// minute apart after a long outage.
///
/// **Values.** The same as SQLite's, so that both engines round-trip a value alike: dates as
/// `DOUBLE PRECISION` seconds since 1970, booleans as `BOOLEAN`, lists of strings as `TEXT[]`,
/// secrets as `BYTEA`, and text in the `C` collation (byte order, case-sensitive, as SQLite's
/// BINARY).
public final class PostgresStore: Store {
    /// How to reach the database and how long to wait for it.
    public struct Settings: Sendable {
        public var url: DatabaseURL
        /// Replaces the URL's password (`database_password_file`).
        public var password: String?
        /// Connections this store opens at most.
        public var poolSize: Int
        public var connectTimeout: Duration
        public var statementTimeout: Duration
        /// How many times a transaction runs at most when PostgreSQL aborts it for a conflict.
        public var maximumAttempts: Int
        /// After a connection attempt failed, transactions are refused at once for this long,
        /// then the next one probes the database again (``ConnectionBreaker``).
        public var downRetryInterval: Duration

        public init(
            url: DatabaseURL, password: String? = nil, poolSize: Int = 10, connectTimeout: Duration = .seconds(5),
            statementTimeout: Duration = .seconds(5), maximumAttempts: Int = 20, downRetryInterval: Duration = .seconds(1)
        ) {
            self.url = url
            self.password = password
            self.poolSize = poolSize
            self.connectTimeout = connectTimeout
            self.statementTimeout = statementTimeout
            self.maximumAttempts = maximumAttempts
            self.downRetryInterval = downRetryInterval
        }
    }

    /// The newest schema version this code knows. A database at a newer version refuses to open.
    public static var latestSchemaVersion: Int { PostgresSchema.migrations.last?.version ?? 0 }

    /// The pool of connections, replaced when a probe finds the database back.
    let pool: PostgresPool
    let settings: Settings
    let logger: Logger
    private let isClosed = Locked(false)
    /// Transactions run again after a serialization failure or a deadlock (tests read it).
    let retries = Locked(0)
    /// Whether the database is presumed down, so that requests are refused at once.
    let breaker: ConnectionBreaker

    private init(pool: PostgresPool, settings: Settings, logger: Logger) {
        self.pool = pool
        self.settings = settings
        self.logger = logger
        self.breaker = ConnectionBreaker(
            poolSize: settings.poolSize, retryInterval: settings.downRetryInterval,
            probeTimeout: settings.connectTimeout + .seconds(1))
    }

    /// Connects, and brings the schema up to date (once, whichever replica gets there first).
    /// - Throws: ``StoreError/unavailable(_:)`` when the database cannot be reached within the
    ///   connect timeout; ``StoreError/engine(_:)`` for a schema newer than this broker knows.
    public static func open(_ settings: Settings, logger: Logger) async throws -> PostgresStore {
        try await open(settings, logger: logger, migrations: PostgresSchema.migrations)
    }

    static func open(_ settings: Settings, logger: Logger, migrations: [PostgresMigration]) async throws -> PostgresStore {
        let store = PostgresStore(pool: try PostgresPool(settings: settings, logger: logger), settings: settings, logger: logger)
        do {
            try await PostgresMigrator(migrations: migrations, logger: logger).migrate(store)
            return store
        } catch {
            try? await store.close()
            throw error
        }
    }

    static func clientConfiguration(_ settings: Settings) throws -> PostgresClient.Configuration {
        let url = settings.url
        let password = settings.password ?? url.password
        var configuration: PostgresClient.Configuration
        if let directory = url.socketDirectory {
            configuration = PostgresClient.Configuration(
                unixSocketPath: (directory as NSString).appendingPathComponent(".s.PGSQL.\(url.port)"),
                username: url.user, password: password, database: url.database)
        } else {
            configuration = PostgresClient.Configuration(
                host: url.host, port: url.port, username: url.user, password: password, database: url.database,
                tls: try Self.tlsConfiguration(url).map { .require($0) } ?? .disable)
        }
        configuration.options.maximumConnections = max(1, settings.poolSize)
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = settings.connectTimeout
        let milliseconds = max(1, Self.milliseconds(settings.statementTimeout))
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(milliseconds)"),
            // A transaction left open by a client that vanished must not hold its locks for long.
            ("idle_in_transaction_session_timeout", "\(max(milliseconds, 10_000) * 3)"),
            ("application_name", "broker"),
        ]
        return configuration
    }

    /// The TLS settings of a TCP connection to `url`; `nil` for none.
    static func tlsConfiguration(_ url: DatabaseURL) throws -> TLSConfiguration? {
        switch url.tlsMode {
        case .disable:
            return nil
        case .require:
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .none
            return tls
        case .verifyFull:
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .fullVerification
            if let path = url.rootCertificatePath {
                guard FileManager.default.isReadableFile(atPath: path) else {
                    throw StoreError.engine("database_url: sslrootcert \(path) is not a readable file")
                }
                tls.trustRoots = .file(path)
            }
            return tls
        }
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }

    // MARK: Transactions

    public func transaction<T: Sendable>(
        _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T {
        try await self.run(.serializable, body)
    }

    /// At `READ COMMITTED`: the body serializes itself with locks (see ``Store/lockingTransaction(_:)``).
    /// Its bodies are those of hot paths (renewals, throttle counters), small and computing next
    /// to nothing: they run on the connection's event loop (``EventLoopTaskExecutor``).
    public func lockingTransaction<T: Sendable>(
        _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T {
        try await self.run(.readCommitted, onEventLoop: true, body)
    }

    public func read<T: Sendable>(
        _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T {
        try await self.run(.readOnlySnapshot, body)
    }

    /// Runs `body` in a transaction begun by `begin`, on the connection's event loop if
    /// `onEventLoop`.
    private func run<T: Sendable>(
        _ begin: TransactionStart, onEventLoop: Bool = false, _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T {
        let storeID = ObjectIdentifier(self)
        let enclosingStores = PostgresTransactionContext.openStores
        guard !enclosingStores.contains(storeID) else {
            throw StoreError.engine("nested transaction: this task is already inside a transaction of this store")
        }
        var attempt = 1
        var staleConnections = 0
        while true {
            try Task.checkCancellation()
            guard !self.isClosed.withLock({ $0 }) else { throw StoreError.engine("store is closed") }
            switch self.breaker.admit() {
            case .admitted:
                break
            case .probe:
                try await self.probe()
            case .refused(let since, let retryIn):
                throw StoreError.unavailable(
                    "the database has not accepted a connection for \(Self.milliseconds(since)) ms "
                        + "(next attempt in \(Self.milliseconds(retryIn)) ms)")
            }
            do {
                return try await PostgresTransactionContext.$openStores.withValue(enclosingStores.union([storeID])) {
                    try await self.attempt(begin, onEventLoop: onEventLoop, body)
                }
            } catch let stale as StaleConnection {
                // A pooled connection the server had cut (found at BEGIN, or under the body before
                // COMMIT): another one, so that a database that came back (a restart, a failover
                // cuts every pooled connection at once) serves the next request instead of
                // failing it; at most once per pooled connection, and one fresh connection more.
                staleConnections += 1
                guard staleConnections <= max(1, self.settings.poolSize) + 1 else { throw stale.error }
            } catch let conflict as SerializationConflict {
                guard attempt < self.settings.maximumAttempts else {
                    // Busy, not broken: the same request may succeed in a moment.
                    throw StoreError.unavailable(
                        "the transaction conflicted with concurrent ones \(attempt) times in a row (\(conflict.sqlState))")
                }
                self.retries.withLock { $0 += 1 }
                // Full jitter on a doubling base (5 ms, 10 ms, … at most 320 ms): racing replicas
                // spread out instead of colliding again in step.
                let ceiling = 5 << min(attempt - 1, 6)
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...ceiling)))
                attempt += 1
            }
        }
    }

    /// One run of a transaction on a leased connection. Throws ``SerializationConflict`` when it
    /// must run again.
    private func attempt<T: Sendable>(
        _ begin: TransactionStart, onEventLoop: Bool, _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T {
        // The lease runs in a child task (to bound its wait), which outlives nothing: the body
        // does not escape this call.
        try await withoutActuallyEscaping(body) { body in
            try await self.withConnection { connection in
                guard onEventLoop else { return try await self.attempt(begin, on: connection, executor: nil, body) }
                let executor = EventLoopTaskExecutor(connection.eventLoop)
                return try await withTaskExecutorPreference(executor) {
                    try await self.attempt(begin, on: connection, executor: executor, body)
                }
            }
        }
    }

    private func attempt<T: Sendable>(
        _ begin: TransactionStart, on connection: PostgresConnection, executor: (any TaskExecutor)?,
        _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T {
        let transaction = PostgresTransaction(connection: connection, store: self, executor: executor)
        try await transaction.begin(begin)
        let result: T
        do {
            result = try await body(transaction)
        } catch {
            await transaction.rollback()
            if let conflict = transaction.conflict { throw conflict }
            // Cut before COMMIT (a terminated backend, a failover): nothing committed, and
            // the body may run again, on another connection, like a stale one at BEGIN.
            if transaction.connectionLost {
                try? await connection.close()
                throw StaleConnection(error: error)
            }
            throw error
        }
        try await transaction.commit()
        return result
    }

    /// The down verdict's probe, before the transaction that carries it: a direct connection,
    /// which the pool's backoff does not hold back. When it connects, the pool, which could not,
    /// is replaced, and the transaction leases from the new one (ending the verdict). When it
    /// does not, the verdict stands for another retry interval.
    private func probe() async throws {
        do {
            try await self.pool.probe(timeout: self.settings.connectTimeout)
        } catch {
            if Task.isCancelled { throw PostgresErrors.storeError(error) }
            self.breaker.leaseFailed()
            // Refused (a password, TLS) or not reachable: unavailable either way, as a wait for a
            // pooled connection that fails so ends.
            let failure = PostgresErrors.storeError(error)
            if case StoreError.unavailable = failure { throw failure }
            throw StoreError.unavailable("no database connection: \(failure)")
        }
        self.pool.replace()
    }

    /// Leases a connection for `body`, waiting at most the connect timeout for one.
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await self.pool.withClient { client in
            try await Self.withConnection(of: client, timeout: self.settings.connectTimeout, breaker: self.breaker, body)
        }
    }

    /// Leases a connection of `client` for `body`, waiting at most `timeout` for one: the pool
    /// itself would wait for as long as the database stays unreachable.
    /// `breaker` learns whether the database gave a connection.
    static func withConnection<T: Sendable>(
        of client: PostgresClient, timeout: Duration, breaker: ConnectionBreaker? = nil,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let lease = Locked(LeaseState.waiting)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await client.withConnection { connection in
                    let won = lease.withLock { state in
                        guard state == .waiting else { return false }
                        state = .leased
                        return true
                    }
                    breaker?.leased()
                    defer { breaker?.returned() }
                    guard won else { throw StoreError.unavailable("no database connection in time") }
                    return try await body(connection)
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                let expired = lease.withLock { state in
                    guard state == .waiting else { return false }
                    state = .timedOut
                    return true
                }
                if expired {
                    throw StoreError.unavailable(
                        "no database connection within \(Self.milliseconds(timeout)) ms (the database is down or "
                            + "unreachable, refuses the user, password or TLS settings: the log says which, "
                            + "or the connection pool is exhausted)")
                }
                return nil
            }
            defer { group.cancelAll() }
            do {
                while let outcome = try await group.next() {
                    if let value = outcome { return value }
                }
            } catch {
                // What the body threw is the caller's (an error of its own, a conflict to retry);
                // only a failure to get a connection is translated here.
                if lease.withLock({ $0 }) == .leased { throw error }
                let failure = PostgresErrors.storeError(error)
                if case StoreError.unavailable = failure, !Task.isCancelled { breaker?.leaseFailed() }
                throw failure
            }
            throw StoreError.engine("the connection lease ended without a result")
        }
    }

    // MARK: Closing

    /// Replicas share the database.
    public var isSharedByReplicas: Bool { true }

    /// Closes the pool (and any replaced one still running). Later transactions throw; closing
    /// again does nothing.
    public func close() async throws {
        guard !PostgresTransactionContext.openStores.contains(ObjectIdentifier(self)) else {
            throw StoreError.engine("cannot close the store from inside one of its transactions")
        }
        let wasClosed = self.isClosed.withLock { closed in
            defer { closed = true }
            return closed
        }
        guard !wasClosed else { return }
        await self.pool.close()
    }

    // MARK: Diagnostics (internal, used by tests)

    /// The versions recorded in `schema_migrations`, ascending.
    func appliedMigrationVersions() async throws -> [Int] {
        try await self.withConnection { connection in
            try await connection.query("SELECT version FROM schema_migrations ORDER BY version", logger: self.logger)
                .collect().map { Int(try $0.decode(Int64.self)) }
        }
    }
}

/// A transaction could not begin because its connection was dead; nothing was sent.
struct StaleConnection: Error {
    var error: any Error
}

/// Where a bounded wait for a pooled connection stands.
private enum LeaseState: Sendable { case waiting, leased, timedOut }

/// Thrown inside a transaction attempt when PostgreSQL aborted it for a conflict with concurrent
/// transactions: the store runs it again.
struct SerializationConflict: Error {
    var sqlState: String
}

/// Which stores the current task is inside a transaction of (to refuse nesting, which could wait
/// for itself forever on an exhausted pool).
enum PostgresTransactionContext {
    @TaskLocal static var openStores: Set<ObjectIdentifier> = []
}

/// Statements that run outside any transaction on a server (creating and dropping databases):
/// for tests and tools, never for the broker's own data.
public enum PostgresAdministration {
    /// Runs `sql` on the database of `settings`, waiting at most its connect timeout for a
    /// connection. `sql` is trusted text (an identifier it names must be checked by the caller).
    public static func execute(_ sql: String, on settings: PostgresStore.Settings, logger: Logger) async throws {
        let client = PostgresClient(configuration: try PostgresStore.clientConfiguration(settings), backgroundLogger: logger)
        let run = Task { await client.run() }
        defer { run.cancel() }
        try await PostgresStore.withConnection(of: client, timeout: settings.connectTimeout) { connection in
            do {
                _ = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
            } catch {
                throw PostgresErrors.storeError(error)
            }
        }
    }
}

extension PostgresStore: SchemaVersioned {
    public func schemaVersion() async throws -> Int { try await self.appliedMigrationVersions().last ?? 0 }
}
