import BrokerCore
import BrokerSync
import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO

/// The embedded SQLite implementation of ``Store``: one database file, shared safely by the
/// server and the command line.
///
/// ```swift
/// let store = try await SQLiteStore.open(path: "/var/lib/broker/broker.sqlite3", logger: logger)
/// let alice = try await store.transaction { tx in
///     try await tx.insertUser(NewUser(username: "alice", passwordHash: hash, createdAt: .now))
/// }
/// try await store.close()
/// ```
///
/// **Transactions.** The store has one connection, with its own one-thread `NIOThreadPool`
/// (SQLite calls block, so they never run on an event loop or in the cooperative pool). A FIFO gate
/// (`AsyncGate`, which suspends tasks rather than blocking threads) admits one transaction at a
/// time, so statements of two transactions never interleave. Each transaction runs as
/// `BEGIN IMMEDIATE … COMMIT`: it takes SQLite's write lock at its start, so transactions of other
/// processes (a CLI) serialize with it too, waiting up to `busy_timeout` (5 s). If the body throws,
/// or its task is cancelled (statements check for cancellation before they start), the transaction
/// rolls back, the gate is released and the error is rethrown. A transaction cannot be nested in
/// another of the same store (it would wait for itself): that throws instead.
///
/// **Durability.** WAL journal with `synchronous=FULL`: a transaction that returned has been
/// synced to disk and survives a power loss.
///
/// **Values.** Dates are stored as REAL seconds since 1970 (sub-microsecond precision for present
/// dates, so a round trip is exact to the microsecond but not always bit for bit); booleans as
/// 0/1; a family's `amr` as a JSON array; secrets as BLOBs.
public final class SQLiteStore: Store {
    /// The newest schema version this code knows. A database at a newer version refuses to open.
    public static var latestSchemaVersion: Int { Schema.migrations.last?.version ?? 0 }

    private struct State {
        /// `nil` once closed, or after a failed `ROLLBACK` discarded the connection (the next
        /// transaction opens a new one).
        var connection: SQLiteConnection?
        /// Read-only snapshots use their own connection (WAL lets it read while a write commits).
        var readConnection: SQLiteConnection?
        var isClosed = false
    }

    private let storage: SQLiteConnection.Storage
    private let threadPool: NIOThreadPool
    private let eventLoop: any EventLoop
    private let migrator: Migrator
    private let logger: Logger
    private let gate = AsyncGate()
    /// Serializes snapshots on the read connection; independent of `gate`.
    private let readGate = AsyncGate()
    /// Reads run on their own thread so that they never queue behind a write's fsync.
    private let readThreadPool: NIOThreadPool
    private let state: Locked<State>

    private init(
        storage: SQLiteConnection.Storage,
        threadPool: NIOThreadPool,
        eventLoop: any EventLoop,
        migrator: Migrator,
        logger: Logger,
        connection: SQLiteConnection
    ) {
        self.storage = storage
        self.threadPool = threadPool
        self.eventLoop = eventLoop
        self.migrator = migrator
        self.logger = logger
        self.state = Locked(State(connection: connection))
        self.readThreadPool = NIOThreadPool(numberOfThreads: 1)
        self.readThreadPool.start()
    }

    // MARK: Opening

    /// Opens (creating it with mode 0600 if missing) the database at `path` and brings its schema
    /// up to date. The parent directory must exist.
    ///
    /// Throws ``StoreError/engine(_:)`` if the file cannot be opened, or if its schema is newer
    /// than this code knows (the database was last used by a newer broker).
    public static func open(path: String, logger: Logger) async throws -> SQLiteStore {
        try await self.open(path: path, logger: logger, migrations: Schema.migrations)
    }

    /// Opens a private in-memory database, for tests. Its content vanishes with the store.
    public static func openInMemory(logger: Logger) async throws -> SQLiteStore {
        try await self.open(storage: .memory, logger: logger, migrations: Schema.migrations)
    }

    /// ``open(path:logger:)`` with an explicit schema history (tests use it to write a newer one).
    static func open(path: String, logger: Logger, migrations: [Migration]) async throws -> SQLiteStore {
        // Absolute, so that SQLite (opened with SQLITE_OPEN_URI) never reads a path such as
        // `file:x?mode=memory` as a URI, and a later change of directory changes nothing.
        let path = URL(fileURLWithPath: path).standardizedFileURL.path
        try DatabaseFile.prepare(path: path, logger: logger)
        return try await self.open(storage: .file(path: path), logger: logger, migrations: migrations)
    }

    private static func open(
        storage: SQLiteConnection.Storage,
        logger: Logger,
        migrations: [Migration]
    ) async throws -> SQLiteStore {
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        let eventLoop = MultiThreadedEventLoopGroup.singleton.any()
        let migrator = Migrator(migrations: migrations, logger: logger)
        do {
            let connection = try await self.connect(
                storage: storage, threadPool: threadPool, eventLoop: eventLoop, migrator: migrator, logger: logger
            )
            return SQLiteStore(
                storage: storage, threadPool: threadPool, eventLoop: eventLoop, migrator: migrator, logger: logger,
                connection: connection
            )
        } catch {
            try? await threadPool.shutdownGracefully()
            throw SQLiteErrors.storeError(error)
        }
    }

    /// Opens a connection, configures it and migrates the schema; closes it again on failure.
    private static func connect(
        storage: SQLiteConnection.Storage,
        threadPool: NIOThreadPool,
        eventLoop: any EventLoop,
        migrator: Migrator,
        logger: Logger
    ) async throws -> SQLiteConnection {
        let connection = try await SQLiteConnection.open(
            storage: storage, threadPool: threadPool, logger: logger, on: eventLoop
        )
        do {
            try await self.configure(connection, storage: storage)
            try await migrator.migrate(connection)
            return connection
        } catch {
            try? await connection.close().get()
            throw error
        }
    }

    private static func configure(_ connection: SQLiteConnection, storage: SQLiteConnection.Storage) async throws {
        // sqlite-nio installs a busy handler that retries forever; busy_timeout replaces it, so a
        // writer in another process that never lets go ends in an error after 5 s, not a hang.
        _ = try await connection.rows("PRAGMA busy_timeout = 5000")
        _ = try await connection.rows("PRAGMA foreign_keys = ON")
        guard try await connection.rows("PRAGMA foreign_keys").first?.int64("foreign_keys") == 1 else {
            throw StoreError.engine("SQLite does not enforce foreign keys on this connection")
        }
        let mode = try await connection.rows("PRAGMA journal_mode = WAL").first?.string("journal_mode")
        if case .file = storage, mode?.lowercased() != "wal" {
            throw StoreError.engine("SQLite refused the WAL journal mode (it kept \(mode ?? "none"))")
        }
        _ = try await connection.rows("PRAGMA synchronous = FULL")
    }

    // MARK: Transactions

    public func transaction<T: Sendable>(
        _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T {
        let storeID = ObjectIdentifier(self)
        let enclosingStores = TransactionContext.openStores
        guard !enclosingStores.contains(storeID) else {
            throw StoreError.engine("nested transaction: this task is already inside a transaction of this store")
        }

        try await self.gate.lock()
        defer { self.gate.unlock() }
        try Task.checkCancellation()
        let connection = try await self.usableConnection()

        do {
            _ = try await connection.rows("BEGIN IMMEDIATE")
        } catch {
            // Nothing should be open, but make sure the connection is left clean.
            await self.rollback(connection)
            throw SQLiteErrors.storeError(error)
        }

        let transaction = SQLiteTransaction(connection: connection)
        let result: T
        do {
            result = try await TransactionContext.$openStores.withValue(enclosingStores.union([storeID])) {
                try await body(transaction)
            }
        } catch {
            transaction.close()
            await self.rollback(connection)
            throw error
        }

        transaction.close()
        do {
            _ = try await connection.rows("COMMIT")
        } catch {
            await self.rollback(connection)
            throw SQLiteErrors.storeError(error)
        }
        return result
    }

    /// A consistent read-only snapshot (`BEGIN` deferred on a read connection with
    /// `query_only`): it does not wait for writers, and writers do not wait for it. A write
    /// attempted inside throws. In-memory stores have one connection: the snapshot is an
    /// ordinary transaction there.
    public func read<T: Sendable>(
        _ body: @Sendable (any StoreTransaction) async throws -> T
    ) async throws -> T {
        guard case .file = self.storage else { return try await self.transaction(body) }
        let storeID = ObjectIdentifier(self)
        let enclosingStores = TransactionContext.openStores
        guard !enclosingStores.contains(storeID) else {
            throw StoreError.engine("nested transaction: this task is already inside a transaction of this store")
        }
        try await self.readGate.lock()
        defer { self.readGate.unlock() }
        try Task.checkCancellation()
        let connection = try await self.usableReadConnection()
        do {
            _ = try await connection.rows("BEGIN")
        } catch {
            await self.discardRead(connection)
            throw SQLiteErrors.storeError(error)
        }
        let transaction = SQLiteTransaction(connection: connection)
        do {
            let result = try await TransactionContext.$openStores.withValue(enclosingStores.union([storeID])) {
                try await body(transaction)
            }
            transaction.close()
            _ = try await connection.rows("COMMIT")
            return result
        } catch {
            transaction.close()
            do {
                _ = try await connection.rows("ROLLBACK")
            } catch let rollbackError as SQLiteError where rollbackError.isNoActiveTransaction {
            } catch {
                await self.discardRead(connection)
            }
            throw error
        }
    }

    public func accountSnapshot(githubID: Int64, login: String, organizations names: [String]) async throws -> AccountSnapshot {
        let (sql, binds) = SQLiteTransaction.accountSnapshotQuery(githubID: githubID, login: login, organizations: names)
        guard case .file = self.storage else {
            return try SQLiteTransaction.accountSnapshot(
                from: try await self.withExclusiveConnection { try await $0.rows(sql, binds) })
        }
        guard !TransactionContext.openStores.contains(ObjectIdentifier(self)) else {
            throw StoreError.engine("nested transaction: this task is already inside a transaction of this store")
        }
        try await self.readGate.lock()
        defer { self.readGate.unlock() }
        let connection = try await self.usableReadConnection()
        do {
            return try SQLiteTransaction.accountSnapshot(from: try await connection.rows(sql, binds))
        } catch let error as StoreError {
            throw error
        } catch {
            throw SQLiteErrors.storeError(error)
        }
    }

    /// The read connection, opened on first use. Call only while holding the read gate.
    private func usableReadConnection() async throws -> SQLiteConnection {
        let (connection, isClosed) = self.state.withLock { ($0.readConnection, $0.isClosed) }
        guard !isClosed else { throw StoreError.engine("store is closed") }
        if let connection { return connection }
        do {
            let connection = try await SQLiteConnection.open(
                storage: self.storage, threadPool: self.readThreadPool, logger: self.logger, on: self.eventLoop)
            _ = try await connection.rows("PRAGMA busy_timeout = 5000")
            _ = try await connection.rows("PRAGMA query_only = ON")
            self.state.withLock { $0.readConnection = connection }
            return connection
        } catch {
            throw SQLiteErrors.storeError(error)
        }
    }

    private func discardRead(_ connection: SQLiteConnection) async {
        self.state.withLock { state in
            if state.readConnection === connection { state.readConnection = nil }
        }
        try? await connection.close().get()
    }

    /// Rolls back whatever is open. Runs even in a cancelled task. If `ROLLBACK` fails (rather than
    /// finding that SQLite already rolled back), the connection's state is unknown: it is closed,
    /// which makes SQLite roll back, and the next transaction opens a new one.
    private func rollback(_ connection: SQLiteConnection) async {
        do {
            _ = try await connection.rows("ROLLBACK")
        } catch let error as SQLiteError where error.isNoActiveTransaction {
            return
        } catch {
            self.logger.error("ROLLBACK failed; reopening the database connection", metadata: [
                "error": "\(SQLiteErrors.storeError(error))",
            ])
            await self.discard(connection)
        }
    }

    /// Closes `connection` and forgets it. Call only while holding the gate.
    private func discard(_ connection: SQLiteConnection) async {
        self.state.withLock { state in
            if state.connection === connection { state.connection = nil }
        }
        do {
            try await connection.close().get()
        } catch {
            self.logger.warning("closing a discarded database connection failed", metadata: [
                "error": "\(SQLiteErrors.storeError(error))",
            ])
        }
    }

    /// The open connection, reopened if a failure discarded it. Call only while holding the gate.
    private func usableConnection() async throws -> SQLiteConnection {
        let (connection, isClosed) = self.state.withLock { ($0.connection, $0.isClosed) }
        guard !isClosed else { throw StoreError.engine("store is closed") }
        if let connection { return connection }
        do {
            let connection = try await Self.connect(
                storage: self.storage, threadPool: self.threadPool, eventLoop: self.eventLoop,
                migrator: self.migrator, logger: self.logger
            )
            self.state.withLock { $0.connection = connection }
            self.logger.notice("reopened the database connection")
            return connection
        } catch {
            throw SQLiteErrors.storeError(error)
        }
    }

    // MARK: Closing

    /// One node: one host serves a SQLite file.
    public var isSharedByReplicas: Bool { false }

    /// Waits for the running and queued transactions, then closes the connection and stops the
    /// store's thread pool. Later transactions throw; closing again does nothing.
    public func close() async throws {
        guard !TransactionContext.openStores.contains(ObjectIdentifier(self)) else {
            throw StoreError.engine("cannot close the store from inside one of its transactions")
        }
        await self.gate.lockIgnoringCancellation()
        defer { self.gate.unlock() }
        await self.readGate.lockIgnoringCancellation()
        defer { self.readGate.unlock() }
        let (connection, readConnection, wasClosed) = self.state.withLock { state in
            let taken = (state.connection, state.readConnection, state.isClosed)
            state.connection = nil
            state.readConnection = nil
            state.isClosed = true
            return taken
        }
        guard !wasClosed else { return }

        var failure: (any Error)?
        if let readConnection {
            do { try await readConnection.close().get() } catch { failure = error }
        }
        if let connection {
            do { try await connection.close().get() } catch { failure = failure ?? error }
        }
        do { try await self.readThreadPool.shutdownGracefully() } catch { failure = failure ?? error }
        do { try await self.threadPool.shutdownGracefully() } catch { failure = failure ?? error }
        if let failure { throw SQLiteErrors.storeError(failure) }
    }

    deinit {
        let (connection, readConnection, wasClosed) = self.state.withLock { ($0.connection, $0.readConnection, $0.isClosed) }
        guard !wasClosed else { return }
        let readThreadPool = self.readThreadPool
        if let readConnection {
            readConnection.close().whenComplete { _ in readThreadPool.shutdownGracefully { _ in } }
        } else {
            readThreadPool.shutdownGracefully { _ in }
        }
        self.logger.warning("SQLiteStore was not closed before being released; closing it in the background")
        let threadPool = self.threadPool
        if let connection {
            connection.close().whenComplete { _ in threadPool.shutdownGracefully { _ in } }
        } else {
            threadPool.shutdownGracefully { _ in }
        }
    }

    // MARK: Diagnostics (internal, used by tests)

    /// Runs `body` with the connection while holding the gate, outside any transaction.
    func withExclusiveConnection<T: Sendable>(
        _ body: (SQLiteConnection) async throws -> T
    ) async throws -> T {
        try await self.gate.lock()
        defer { self.gate.unlock() }
        return try await body(self.usableConnection())
    }

    /// The versions recorded in `schema_migrations`, ascending.
    func appliedMigrationVersions() async throws -> [Int] {
        try await self.withExclusiveConnection { connection in
            try await connection.rows("SELECT version FROM schema_migrations ORDER BY version")
                .map { try Int($0.int64("version")) }
        }
    }

    /// Drops the connection as a failed `ROLLBACK` would.
    func discardConnectionForTesting() async throws {
        try await self.withExclusiveConnection { connection in await self.discard(connection) }
    }
}

/// Which stores the current task is inside a transaction of (to refuse nesting, which would wait
/// for itself forever).
private enum TransactionContext {
    @TaskLocal static var openStores: Set<ObjectIdentifier> = []
}

extension SQLiteStore: SchemaVersioned {
    public func schemaVersion() async throws -> Int { try await self.appliedMigrationVersions().last ?? 0 }
}
