import BrokerCore
import BrokerSync
import Logging

/// Copies the write-ahead log back into the database file on a thread and connection of its own,
/// so that the write thread never stops for it.
///
/// SQLite checkpoints by default inside the `COMMIT` that takes the log past 1000 pages: that
/// commit copies the pages and syncs the database file while every transaction queued behind it
/// waits, which is what the slowest refresh grants (p99) were made of. Here the write connection
/// leaves checkpoints to this type (its own threshold is raised to ``fallbackPages``, a safety net
/// should this one fall behind), and every ``commitsPerCheckpoint`` commits a `PASSIVE`
/// checkpoint runs on another connection: it copies what no reader still needs, without taking
/// any lock a writer waits for. SQLite restarts the log from its beginning once a checkpoint has
/// copied all of it, so the file stays about the size of what is written between two
/// checkpoints.
final class WALCheckpointer: Sendable {
    /// A refresh grant writes about five pages: this keeps the log near SQLite's default size.
    static let commitsPerCheckpoint = 200
    /// The write connection's own `wal_autocheckpoint`, reached only if checkpoints here fail.
    static let fallbackPages = 10_000

    private struct State {
        var commitsSinceCheckpoint = 0
        var isCheckpointing = false
        var connection: DatabaseConnection?
        var failuresLogged = 0
        var completed = 0
        /// A background checkpoint has copied the bulk: the write thread finishes the job.
        var writerFinishes = false
    }

    private let path: String
    private let thread: DatabaseThread
    private let logger: Logger
    private let state = Locked(State())

    private init(path: String, thread: DatabaseThread, logger: Logger) {
        self.path = path
        self.thread = thread
        self.logger = logger
    }

    /// A checkpointer for the database file at `path`, with its thread started here.
    static func start(path: String, logger: Logger) -> WALCheckpointer {
        WALCheckpointer(path: path, thread: DatabaseThread.start(name: "sqlite-checkpoint"), logger: logger)
    }

    /// Counts a commit; every ``commitsPerCheckpoint`` starts a checkpoint unless one is running.
    func noteCommit() {
        let start = self.state.withLock { state -> Bool in
            state.commitsSinceCheckpoint += 1
            guard state.commitsSinceCheckpoint >= Self.commitsPerCheckpoint, !state.isCheckpointing else { return false }
            state.commitsSinceCheckpoint = 0
            state.isCheckpointing = true
            return true
        }
        guard start else { return }
        let submitted = self.thread.submit { self.checkpoint() }
        if !submitted { self.state.withLock { $0.isCheckpointing = false } }
    }

    /// Call on the write thread after a commit. SQLite restarts the log from its beginning only
    /// when a write transaction starts after a checkpoint has copied all of it; writers that keep
    /// appending while the checkpoint runs here would never let it catch up, and the log would
    /// grow. So once a background checkpoint has copied the bulk, the write connection copies
    /// the few frames written since (a checkpoint of its own, short), and the next transaction
    /// restarts the log.
    func finishOnWriter(_ connection: DatabaseConnection) {
        let due = self.state.withLock { state -> Bool in
            defer { state.writerFinishes = false }
            return state.writerFinishes
        }
        guard due else { return }
        // A failure is not the transaction's: it has committed. The next round tries again.
        _ = try? connection.rowsHere("PRAGMA wal_checkpoint(PASSIVE)")
    }

    /// Runs on the checkpoint thread.
    private func checkpoint() {
        defer { self.state.withLock { $0.isCheckpointing = false } }
        do {
            let connection = try self.usableConnection()
            _ = try connection.rowsHere("PRAGMA wal_checkpoint(PASSIVE)")
            self.state.withLock {
                $0.completed += 1
                $0.writerFinishes = true
            }
        } catch {
            // Not fatal: the next round tries again, and the write connection's own threshold
            // bounds the log meanwhile. Logged a few times, not at every round.
            let logged = self.state.withLock { state -> Bool in
                state.failuresLogged += 1
                return state.failuresLogged <= 3
            }
            if logged {
                self.logger.warning("a WAL checkpoint failed; SQLite checkpoints by itself past \(Self.fallbackPages) pages", metadata: [
                    "error": "\(SQLiteErrors.storeError(error))",
                ])
            }
        }
    }

    private func usableConnection() throws -> DatabaseConnection {
        if let connection = self.state.withLock({ $0.connection }) { return connection }
        let connection = try DatabaseConnection.openHere(.file(path: self.path), on: self.thread)
        _ = try connection.rowsHere("PRAGMA busy_timeout = 5000")
        self.state.withLock { $0.connection = connection }
        return connection
    }

    /// Checkpoints run to their end so far (tests).
    var checkpointsForTesting: Int { self.state.withLock { $0.completed } }

    /// Lets a running checkpoint finish, closes the connection and ends the thread.
    func shutDown() async {
        let connection = self.state.withLock { state -> DatabaseConnection? in
            defer { state.connection = nil }
            return state.connection
        }
        await connection?.close()
        await self.thread.shutDown()
    }
}
