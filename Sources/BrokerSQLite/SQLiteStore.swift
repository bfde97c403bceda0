import BrokerCore
import BrokerSync
import Foundation
import Logging

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
/// **Transactions.** The store has one write connection on a thread of its own
/// (``DatabaseThread``: SQLite calls block, so they never run on an event loop or in the
/// cooperative pool). A FIFO gate (`AsyncGate`, which suspends tasks rather than blocking threads)
/// admits one transaction at a time, so statements of two transactions never interleave. The
/// whole transaction (`BEGIN`, the body, `COMMIT`) runs with that thread as the task's executor
/// preference: a statement is a function call on the thread, not a hand-off to it and back. Each transaction runs as
/// `BEGIN IMMEDIATE … COMMIT`: it takes SQLite's write lock at its start, so transactions of other
/// processes (a CLI) serialize with it too, waiting up to `busy_timeout` (5 s). If the body throws,
/// or its task is cancelled (statements check for cancellation before they start), the transaction
/// rolls back, the gate is released and the error is rethrown. A transaction cannot be nested in
/// another of the same store (it would wait for itself): that throws instead.
///
/// **Durability.** WAL journal; a transaction that returned has been synced to disk and survives
/// a power loss. `COMMIT` itself does not wait for the disk (`synchronous=NORMAL`): the gate
/// passes to the next transaction at once, and ``CommitSync`` syncs the log once for all the
/// commits made meanwhile before any of their callers returns (group commit). Inside a
/// ``DurabilityScope`` the wait is the scope's: the operation's answer waits for it instead.
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
        var connection: DatabaseConnection?
        /// Read-only snapshots use their own connection (WAL lets it read while a write commits).
        var readConnection: DatabaseConnection?
        var isClosed = false
    }

    private let storage: DatabaseStorage
    private let writeThread: DatabaseThread
    /// Reads run on their own thread so that they never queue behind a write's fsync.
    private let readThread: DatabaseThread
    /// Group commit of a database file (`nil` in memory: nothing to sync).
    private let commitSync: CommitSync?
    /// Checkpoints of a database file's log, off the write thread (`nil` in memory).
    private let checkpointer: WALCheckpointer?
    private let migrator: Migrator
    private let logger: Logger
    private let gate = AsyncGate()
    /// Serializes snapshots on the read connection; independent of `gate`.
    private let readGate = AsyncGate()
    private let state: Locked<State>

    private init(
        storage: DatabaseStorage,
        writeThread: DatabaseThread,
        readThread: DatabaseThread,
        commitSync: CommitSync?,
        checkpointer: WALCheckpointer?,
        migrator: Migrator,
        logger: Logger,
        connection: DatabaseConnection
    ) {
        self.storage = storage
        self.writeThread = writeThread
        self.readThread = readThread
        self.commitSync = commitSync
        self.checkpointer = checkpointer
        self.migrator = migrator
        self.logger = logger
        self.state = Locked(State(connection: connection))
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

    /// ``open(path:logger:)`` with an explicit schema history (tests use it to write a newer one),
    /// and a hook called before each group commit's sync (tests hold a sync back with it).
    static func open(
        path: String, logger: Logger, migrations: [Migration], beforeEachSync: (@Sendable () throws -> Void)? = nil
    ) async throws -> SQLiteStore {
        // Absolute, so that SQLite (opened with SQLITE_OPEN_URI) never reads a path such as
        // `file:x?mode=memory` as a URI, and a later change of directory changes nothing.
        let path = URL(fileURLWithPath: path).standardizedFileURL.path
        try DatabaseFile.prepare(path: path, logger: logger)
        return try await self.open(
            storage: .file(path: path), logger: logger, migrations: migrations, beforeEachSync: beforeEachSync)
    }

    private static func open(
        storage: DatabaseStorage,
        logger: Logger,
        migrations: [Migration],
        beforeEachSync: (@Sendable () throws -> Void)? = nil
    ) async throws -> SQLiteStore {
        let writeThread = DatabaseThread.start(name: "sqlite-write")
        let migrator = Migrator(migrations: migrations, logger: logger)
        do {
            let connection = try await self.connect(storage: storage, on: writeThread, migrator: migrator)
            var (commitSync, checkpointer): (CommitSync?, WALCheckpointer?) = (nil, nil)
            if case .file(let path) = storage {
                commitSync = CommitSync.start(databasePath: path, beforeEachSync: beforeEachSync)
                checkpointer = WALCheckpointer.start(path: path, logger: logger)
            }
            return SQLiteStore(
                storage: storage, writeThread: writeThread, readThread: DatabaseThread.start(name: "sqlite-read"),
                commitSync: commitSync, checkpointer: checkpointer, migrator: migrator, logger: logger,
                connection: connection
            )
        } catch {
            await writeThread.shutDown()
            throw SQLiteErrors.storeError(error)
        }
    }

    /// Opens a connection, configures it and migrates the schema; closes it again on failure.
    private static func connect(
        storage: DatabaseStorage,
        on thread: DatabaseThread,
        migrator: Migrator
    ) async throws -> DatabaseConnection {
        let connection = try await DatabaseConnection.open(storage, on: thread)
        do {
            try await self.configure(connection, storage: storage)
            try await migrator.migrate(connection)
            return connection
        } catch {
            await connection.close()
            throw error
        }
    }

    private static func configure(_ connection: DatabaseConnection, storage: DatabaseStorage) async throws {
        // Without a busy timeout a writer in another process (a CLI) makes statements fail at
        // once; with one, a writer that never lets go ends in an error after 5 s, not a hang.
        _ = try await connection.rows("PRAGMA busy_timeout = 5000")
        _ = try await connection.rows("PRAGMA foreign_keys = ON")
        guard try await connection.rows("PRAGMA foreign_keys").first?.int64("foreign_keys") == 1 else {
            throw StoreError.engine("SQLite does not enforce foreign keys on this connection")
        }
        let mode = try await connection.rows("PRAGMA journal_mode = WAL").first?.string("journal_mode")
        if case .file = storage, mode?.lowercased() != "wal" {
            throw StoreError.engine("SQLite refused the WAL journal mode (it kept \(mode ?? "none"))")
        }
        // COMMIT writes the log without waiting for the disk; CommitSync syncs it, once for all the
        // commits made meanwhile, before any of them returns (group commit).
        _ = try await connection.rows("PRAGMA synchronous = NORMAL")
        // WALCheckpointer checkpoints on its own thread; SQLite's own checkpoint inside a COMMIT
        // stays as a safety net only.
        _ = try await connection.rows("PRAGMA wal_autocheckpoint = \(WALCheckpointer.fallbackPages)")
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

        let (result, commit) = try await self.runLocked(body, storeID: storeID, enclosingStores: enclosingStores)
        // The gate is free again: the next transaction runs while this one waits for the disk, or
        // while the operation it belongs to goes on (DurabilityScope).
        if let commitSync = self.commitSync,
            !DurabilityScope.deferWait({ try await commitSync.waitUntilDurable(commit) })
        {
            try await commitSync.waitUntilDurable(commit)
        }
        return result
    }

    /// Takes the gate, runs `body` in one SQLite transaction and releases the gate, all on the
    /// write thread; returns the result and the commit's sequence number.
    ///
    /// The gate is taken on the write thread too: releasing it resumes the next transaction's task
    /// there, so under load the thread goes from one transaction to the next without waiting for
    /// the next task to be scheduled elsewhere and to come back.
    private func runLocked<T: Sendable>(
        _ body: @Sendable (any StoreTransaction) async throws -> T,
        storeID: ObjectIdentifier,
        enclosingStores: Set<ObjectIdentifier>
    ) async throws -> (T, UInt64) {
        try await withTaskExecutorPreference(self.writeThread) {
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
            let commit = self.commitSync?.recordCommit() ?? 0
            self.checkpointer?.finishOnWriter(connection)
            self.checkpointer?.noteCommit()
            return (result, commit)
        }
    }

    /// Waits until every commit this task may have read is on disk: nothing the store hands out
    /// can vanish in a power loss.
    private func waitForSeenCommits() async throws {
        guard let commitSync = self.commitSync else { return }
        try await commitSync.waitUntilDurable(commitSync.lastCommit)
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
        let result = try await self.snapshot(body, storeID: storeID, enclosingStores: enclosingStores)
        try await self.waitForSeenCommits()
        return result
    }

    private func snapshot<T: Sendable>(
        _ body: @Sendable (any StoreTransaction) async throws -> T,
        storeID: ObjectIdentifier,
        enclosingStores: Set<ObjectIdentifier>
    ) async throws -> T {
        // Taken on the read thread, as runLocked takes the write gate on the write thread.
        try await withTaskExecutorPreference(self.readThread) {
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
                } catch let rollbackError as SQLiteFailure where rollbackError.isNoActiveTransaction {
                } catch {
                    await self.discardRead(connection)
                }
                throw error
            }
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
        let rows: [DatabaseRow]
        do {
            rows = try await withTaskExecutorPreference(self.readThread) {
                try await self.readGate.lock()
                defer { self.readGate.unlock() }
                return try await self.usableReadConnection().rows(sql, binds)
            }
        } catch {
            throw SQLiteErrors.storeError(error)
        }
        try await self.waitForSeenCommits()
        return try SQLiteTransaction.accountSnapshot(from: rows)
    }

    /// The read connection, opened on first use. Call only while holding the read gate.
    private func usableReadConnection() async throws -> DatabaseConnection {
        let (connection, isClosed) = self.state.withLock { ($0.readConnection, $0.isClosed) }
        guard !isClosed else { throw StoreError.engine("store is closed") }
        if let connection { return connection }
        do {
            let connection = try await DatabaseConnection.open(self.storage, on: self.readThread)
            do {
                _ = try await connection.rows("PRAGMA busy_timeout = 5000")
                _ = try await connection.rows("PRAGMA query_only = ON")
            } catch {
                await connection.close()
                throw error
            }
            self.state.withLock { $0.readConnection = connection }
            return connection
        } catch {
            throw SQLiteErrors.storeError(error)
        }
    }

    private func discardRead(_ connection: DatabaseConnection) async {
        self.state.withLock { state in
            if state.readConnection === connection { state.readConnection = nil }
        }
        await connection.close()
    }

    /// Rolls back whatever is open. Runs even in a cancelled task. If `ROLLBACK` fails (rather than
    /// finding that SQLite already rolled back), the connection's state is unknown: it is closed,
    /// which makes SQLite roll back, and the next transaction opens a new one.
    private func rollback(_ connection: DatabaseConnection) async {
        do {
            _ = try await connection.rows("ROLLBACK")
        } catch let error as SQLiteFailure where error.isNoActiveTransaction {
            return
        } catch {
            self.logger.error("ROLLBACK failed; reopening the database connection", metadata: [
                "error": "\(SQLiteErrors.storeError(error))",
            ])
            await self.discard(connection)
        }
    }

    /// Closes `connection` and forgets it. Call only while holding the gate.
    private func discard(_ connection: DatabaseConnection) async {
        self.state.withLock { state in
            if state.connection === connection { state.connection = nil }
        }
        await connection.close()
    }

    /// The open connection, reopened if a failure discarded it. Call only while holding the gate.
    private func usableConnection() async throws -> DatabaseConnection {
        let (connection, isClosed) = self.state.withLock { ($0.connection, $0.isClosed) }
        guard !isClosed else { throw StoreError.engine("store is closed") }
        if let connection { return connection }
        do {
            let connection = try await Self.connect(storage: self.storage, on: self.writeThread, migrator: self.migrator)
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

    /// Waits for the running and queued transactions, then closes the connections and ends the
    /// store's threads. Later transactions throw; closing again does nothing.
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
        // The write connection closes last: as the last connection it checkpoints what is left.
        await self.checkpointer?.shutDown()
        await readConnection?.close()
        await connection?.close()
        await self.commitSync?.shutDown()
        await self.readThread.shutDown()
        await self.writeThread.shutDown()
    }

    deinit {
        let (connection, readConnection, wasClosed) = self.state.withLock { ($0.connection, $0.readConnection, $0.isClosed) }
        guard !wasClosed else { return }
        self.logger.warning("SQLiteStore was not closed before being released; closing it in the background")
        let (writeThread, readThread, commitSync, checkpointer) =
            (self.writeThread, self.readThread, self.commitSync, self.checkpointer)
        Task {
            await checkpointer?.shutDown()
            await readConnection?.close()
            await connection?.close()
            await commitSync?.shutDown()
            await readThread.shutDown()
            await writeThread.shutDown()
        }
    }

    // MARK: Diagnostics (internal, used by tests)

    /// Runs `body` with the connection while holding the gate, outside any transaction; returns
    /// once what it wrote or read is on disk.
    func withExclusiveConnection<T: Sendable>(
        _ body: (DatabaseConnection) async throws -> T
    ) async throws -> T {
        let result: T
        do {
            try await self.gate.lock()
            defer { self.gate.unlock() }
            result = try await body(self.usableConnection())
            _ = self.commitSync?.recordCommit()
        }
        try await self.waitForSeenCommits()
        return result
    }

    /// Checkpoints run by the checkpointer so far (`nil` for an in-memory store).
    var checkpointsForTesting: Int? { self.checkpointer?.checkpointsForTesting }

    /// Syncs to disk made so far by group commit (`nil` for an in-memory store).
    var commitSyncsForTesting: Int? { self.commitSync?.syncsForTesting }

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
