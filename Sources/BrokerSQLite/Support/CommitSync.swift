import BrokerCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Group commit for a SQLite database in WAL mode: commits share their sync to disk.
///
/// The write connection runs with `synchronous=NORMAL`, so `COMMIT` appends the transaction to
/// the write-ahead log without waiting for the disk, and the next transaction can start at once.
/// Each commit takes a sequence number (``recordCommit()``, on the write thread right after
/// `COMMIT`); its caller then waits (``waitUntilDurable(_:)``) until one `fdatasync` of the log
/// has started after that commit and finished. One sync serves every commit made before it
/// started, however many, so concurrent writers are no longer bounded by the disk's syncs per
/// second. What `synchronous=FULL` promised still holds for everything the broker answers: a
/// transaction returns only once it is on disk, and survives a power loss.
///
/// Others can read a commit before its sync ends, as with any early release of locks. Everything
/// that depends on it reaches its own caller only after a later sync, which covers it too (syncs
/// run in order and each covers the whole log); read-only snapshots also wait for the commits
/// they may have seen (``waitUntilDurable(_:)`` with ``lastCommit``).
///
/// A failed sync leaves unknown what reached the disk: every waiter, then every later caller,
/// fails with ``StoreError/engine(_:)`` until the process restarts (SQLite's recovery then
/// reads the log as the disk kept it). Retrying `fsync` after a failure could report success for
/// pages the kernel has already dropped.
final class CommitSync: @unchecked Sendable {
    private struct Waiter {
        var sequence: UInt64
        var continuation: CheckedContinuation<Void, any Error>
    }

    // Guarded by `lock`.
    private let lock = NSLock()
    private var committed: UInt64 = 0
    private var synced: UInt64 = 0
    private var waiters: [Waiter] = []
    private var isSyncScheduled = false
    private var failure: StoreError?
    private var syncCount = 0

    private let thread: DatabaseThread
    private let syncToDisk: @Sendable () throws -> Void

    private init(thread: DatabaseThread, syncToDisk: @escaping @Sendable () throws -> Void) {
        self.thread = thread
        self.syncToDisk = syncToDisk
    }

    /// Syncs with `syncToDisk` (which must make every write to the log made before it was called
    /// durable) on a thread of its own, started here.
    static func start(syncToDisk: @escaping @Sendable () throws -> Void) -> CommitSync {
        CommitSync(thread: DatabaseThread.start(name: "sqlite-sync"), syncToDisk: syncToDisk)
    }

    /// Syncs the write-ahead log of the database file at `databasePath`, calling
    /// `beforeEachSync` first (tests hold a sync back with it).
    static func start(databasePath: String, beforeEachSync: (@Sendable () throws -> Void)? = nil) -> CommitSync {
        let log = WriteAheadLogFile(databasePath: databasePath)
        return self.start(syncToDisk: {
            try beforeEachSync?()
            try log.sync()
        })
    }

    /// Numbers a commit that has just returned. Call on the write thread, right after `COMMIT`.
    func recordCommit() -> UInt64 {
        self.lock.withLock {
            self.committed += 1
            return self.committed
        }
    }

    /// The sequence number of the latest commit.
    var lastCommit: UInt64 { self.lock.withLock { self.committed } }

    /// Syncs made so far (tests compare it with the number of transactions).
    var syncsForTesting: Int { self.lock.withLock { self.syncCount } }

    /// Returns once commit `sequence` (and every earlier one) is on disk.
    func waitUntilDurable(_ sequence: UInt64) async throws {
        if self.lock.withLock({ self.synced >= sequence }) { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            enum Next { case durable, waiting, failed(StoreError, [CheckedContinuation<Void, any Error>]) }
            let next: Next = self.lock.withLock {
                if self.synced >= sequence { return .durable }
                self.waiters.append(Waiter(sequence: sequence, continuation: continuation))
                // A failure hands back every waiter, this one included.
                guard let (error, failed) = self.scheduleSyncIfNeeded() else { return .waiting }
                return .failed(error, failed)
            }
            switch next {
            case .durable: continuation.resume()
            case .waiting: break
            case .failed(let error, let failed): for waiting in failed { waiting.resume(throwing: error) }
            }
        }
    }

    /// Syncs what is pending, then ends the sync thread.
    func shutDown() async {
        try? await self.waitUntilDurable(self.lastCommit)
        await self.thread.shutDown()
    }

    /// Schedules a sync when someone waits and none is scheduled. Call with `lock` held. Returns
    /// the failure and the waiters to fail when the log's state is unknown or the thread has
    /// stopped; the caller resumes them outside the lock.
    private func scheduleSyncIfNeeded() -> (StoreError, [CheckedContinuation<Void, any Error>])? {
        if self.failure != nil { return self.takeWaitersToFail() }
        guard !self.isSyncScheduled, !self.waiters.isEmpty else { return nil }
        self.isSyncScheduled = true
        if !self.thread.submit({ self.syncOnce() }) {
            self.isSyncScheduled = false
            self.failure = StoreError.engine("store is closed")
            return self.takeWaitersToFail()
        }
        return nil
    }

    private func takeWaitersToFail() -> (StoreError, [CheckedContinuation<Void, any Error>])? {
        guard let failure = self.failure else { return nil }
        let failed = self.waiters.map(\.continuation)
        self.waiters = []
        return (failure, failed)
    }

    /// One sync covering every commit recorded before it started; then the next, if anyone
    /// waits for a later commit.
    private func syncOnce() {
        let target = self.lock.withLock { self.committed }
        var outcome: StoreError?
        do {
            try self.syncToDisk()
        } catch {
            outcome = StoreError.engine(
                "the database could not be synced to disk (\(error)); restart the broker once the disk is healthy")
        }
        let (ready, failed) = self.lock.withLock {
            () -> ([CheckedContinuation<Void, any Error>], (StoreError, [CheckedContinuation<Void, any Error>])?) in
            self.isSyncScheduled = false
            self.syncCount += 1
            if let outcome {
                self.failure = self.failure ?? outcome
                return ([], self.takeWaitersToFail())
            }
            self.synced = max(self.synced, target)
            let ready = self.waiters.filter { $0.sequence <= target }.map(\.continuation)
            self.waiters.removeAll { $0.sequence <= target }
            return (ready, self.scheduleSyncIfNeeded())
        }
        for continuation in ready { continuation.resume() }
        if let (error, continuations) = failed {
            for continuation in continuations { continuation.resume(throwing: error) }
        }
    }
}

/// The `-wal` file beside a database, synced with `fdatasync` through a descriptor of our own
/// (a sync covers the file, whichever descriptor asks). Reopened when SQLite has removed and
/// recreated the file; when there is no log at all, the database file itself is synced.
private final class WriteAheadLogFile: @unchecked Sendable {
    private let databasePath: String
    private let logPath: String
    // Touched only on the sync thread.
    private var descriptor: Int32 = -1

    init(databasePath: String) {
        self.databasePath = databasePath
        self.logPath = databasePath + "-wal"
    }

    func sync() throws {
        if self.descriptor >= 0 {
            var status = stat()
            if fstat(self.descriptor, &status) != 0 || status.st_nlink == 0 {
                _ = close(self.descriptor)
                self.descriptor = -1
            }
        }
        if self.descriptor < 0 {
            let opened = open(self.logPath, O_RDONLY | O_CLOEXEC)
            guard opened >= 0 else {
                if errno == ENOENT { return try Self.syncFile(at: self.databasePath) }
                throw StoreError.engine("cannot open \(self.logPath): \(String(cString: strerror(errno)))")
            }
            self.descriptor = opened
            // A log SQLite has just created is durable only once its directory entry is.
            try Self.syncFile(at: URL(fileURLWithPath: self.logPath).deletingLastPathComponent().path)
        }
        while fdatasync(self.descriptor) != 0 {
            guard errno == EINTR else {
                throw StoreError.engine("fdatasync of \(self.logPath) failed: \(String(cString: strerror(errno)))")
            }
        }
    }

    private static func syncFile(at path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StoreError.engine("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { _ = close(descriptor) }
        while fsync(descriptor) != 0 {
            guard errno == EINTR else { throw StoreError.engine("fsync of \(path) failed: \(String(cString: strerror(errno)))") }
        }
    }

    deinit {
        if self.descriptor >= 0 { _ = close(self.descriptor) }
    }
}
