#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Why the audit log could not be opened, written or read. The description names the path and
/// the system's reason, never a line's content.
///
/// ```swift
/// do { try await sink.append(line) }
/// catch let error as AuditFileError { print(error) }   // could not write the audit log /dev/full: No space left on device (errno 28)
/// ```
public struct AuditFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    /// The system's error number; nil for a sink that was closed.
    public let errno: Int32?
    public let description: String

    init(path: String, errno: Int32?, description: String) {
        self.path = path
        self.errno = errno
        self.description = description
    }

    static func systemCall(_ operation: String, path: String, errno code: Int32) -> AuditFileError {
        AuditFileError(
            path: path, errno: code,
            description: "could not \(operation) the audit log \(path): \(String(cString: strerror(code))) (errno \(code))")
    }

    static func closed(_ path: String) -> AuditFileError {
        AuditFileError(path: path, errno: nil, description: "the audit log \(path) is closed")
    }
}

/// Appends audit lines to a file, durably, from a thread of its own.
///
/// The file is opened with `O_APPEND` (never truncated; lines from another process appending
/// to the same file, such as a CLI command while the server runs, do not interleave within a
/// line). A file it creates gets mode 0600, a missing directory 0700. Each line is on
/// disk (`fdatasync`) before ``append(_:)`` returns.
///
/// Disk I/O never runs on Swift's cooperative pool or an event loop: callers suspend while the
/// writer thread works. Lines that arrive while it syncs are written together by the next single
/// `write(2)` and share one `fdatasync` (group commit), so a burst of events costs one sync, not
/// one each.
///
/// After a failure the file is closed and reopened by the next append, so a disk that was full
/// and has room again recovers without a restart. Otherwise the descriptor stays open: a log
/// renamed by rotation keeps receiving lines until a restart (see `docs/audit.md`). If the file
/// ends in a torn line (a crash or a failed write cut a line short), the next append starts on
/// a new line, so only the torn line is lost.
///
/// ```swift
/// let sink = FileAuditSink(path: "/var/lib/broker/audit.log")
/// try await sink.append(event.jsonLine)
/// await sink.close()
/// ```
public final class FileAuditSink: AuditSink {
    public let path: String
    private let writer: AuditFileWriter

    /// Does nothing yet: the writer thread starts and the file is opened by the first append,
    /// so that building the services touches no file (start-up and the first event do).
    public init(path: String) {
        self.path = path
        writer = AuditFileWriter(path: path)
    }

    deinit {
        writer.requestStop()
    }

    /// - Throws: ``AuditFileError`` if the line is not durably in the file.
    public func append(_ line: [UInt8]) async throws {
        try await writer.append(line)
    }

    /// Writes and syncs what is queued, closes the file and ends the thread.
    public func close() async {
        await writer.stop()
    }
}

/// The thread behind ``FileAuditSink``: a queue of lines under a condition variable, drained by
/// one thread that owns the file descriptor.
private final class AuditFileWriter: @unchecked Sendable {
    private struct QueuedLine {
        let bytes: [UInt8]
        let continuation: CheckedContinuation<Result<Void, AuditFileError>, Never>
    }

    /// Shared with callers; guarded by `condition`.
    private struct Inbox {
        var queued: [QueuedLine] = []
        var stopRequested = false
        var stopped = false
        /// The writer thread runs from the first append on.
        var threadStarted = false
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
    }

    let path: String
    // NSCondition is a pthread mutex and condition variable, which ThreadSanitizer understands.
    private let condition = NSCondition()
    private var inbox = Inbox()
    // The writer thread's alone.
    private var descriptor: Int32 = -1
    /// Whether the file's last byte is not a newline, so the next write must begin with one.
    private var endsMidLine = false

    init(path: String) {
        self.path = path
    }

    /// Called with `condition` locked.
    private func startThreadIfNeeded() {
        guard !inbox.threadStarted else { return }
        inbox.threadStarted = true
        // The thread keeps the writer alive until it has stopped.
        let thread = Thread { [self] in run() }
        thread.name = "broker.audit"
        thread.start()
    }

    func append(_ line: [UInt8]) async throws {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, AuditFileError>, Never>) in
            condition.lock()
            guard !inbox.stopRequested else {
                condition.unlock()
                continuation.resume(returning: .failure(.closed(path)))
                return
            }
            inbox.queued.append(QueuedLine(bytes: line, continuation: continuation))
            startThreadIfNeeded()
            condition.signal()
            condition.unlock()
        }
        try result.get()
    }

    /// Returns once every line queued before it is written and the thread has ended.
    func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            if inbox.stopped || !inbox.threadStarted {
                // Never started: nothing was queued and no file is open.
                inbox.stopRequested = true
                inbox.stopped = true
                condition.unlock()
                continuation.resume()
                return
            }
            inbox.stopRequested = true
            inbox.stopWaiters.append(continuation)
            condition.signal()
            condition.unlock()
        }
    }

    /// Asks the thread to finish without waiting for it.
    func requestStop() {
        condition.lock()
        inbox.stopRequested = true
        condition.signal()
        condition.unlock()
    }

    // MARK: - Writer thread

    private func run() {
        while true {
            condition.lock()
            while inbox.queued.isEmpty && !inbox.stopRequested { condition.wait() }
            let batch = inbox.queued
            inbox.queued.removeAll()
            // Appends are refused once a stop is requested, so this batch is the last one.
            let stopping = inbox.stopRequested
            condition.unlock()

            if !batch.isEmpty {
                let results = write(batch.map(\.bytes))
                for (line, result) in zip(batch, results) { line.continuation.resume(returning: result) }
            }
            if stopping {
                closeDescriptor()
                condition.lock()
                inbox.stopped = true
                let waiters = inbox.stopWaiters
                inbox.stopWaiters.removeAll()
                condition.unlock()
                for waiter in waiters { waiter.resume() }
                return
            }
        }
    }

    /// Writes `lines` with one `write(2)` loop and one sync; says for each line whether it is durable.
    private func write(_ lines: [[UInt8]]) -> [Result<Void, AuditFileError>] {
        do {
            try openIfNeeded()
        } catch {
            return lines.map { _ in .failure(error) }
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(lines.reduce(1) { $0 + $1.count })
        if endsMidLine { buffer.append(UInt8(ascii: "\n")) }
        var lineEnds: [Int] = []
        for line in lines {
            buffer.append(contentsOf: line)
            lineEnds.append(buffer.count)
        }

        var written = 0
        var failure: AuditFileError?
        buffer.withUnsafeBytes { bytes in
            while written < bytes.count {
                let count = posixWrite(descriptor, bytes.baseAddress! + written, bytes.count - written)
                if count < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    failure = .systemCall("write", path: path, errno: code)
                    return
                }
                // A file that accepts nothing is full; retrying would spin.
                guard count > 0 else {
                    failure = .systemCall("write", path: path, errno: ENOSPC)
                    return
                }
                written += count
            }
        }

        if written > 0, let syncFailure = sync() {
            closeDescriptor()
            return lines.map { _ in .failure(syncFailure) }
        }
        guard let failure else {
            endsMidLine = false
            return lines.map { _ in .success(()) }
        }
        // Reopening re-reads the file's end, so a line cut short here is followed by a newline.
        closeDescriptor()
        // Lines wholly written before the failure are synced above: those actions are recorded.
        return lineEnds.map { $0 <= written ? .success(()) : .failure(failure) }
    }

    /// fdatasync, retried on EINTR; nil when the data is durable.
    private func sync() -> AuditFileError? {
        while fdatasync(descriptor) != 0 {
            let code = errno
            if code == EINTR { continue }
            // Pipes, FIFOs and character devices (a log collector's pipe) cannot be synced;
            // a write they accepted is all there is.
            if code == EINVAL { return nil }
            return .systemCall("sync", path: path, errno: code)
        }
        return nil
    }

    private func openIfNeeded() throws(AuditFileError) {
        guard descriptor < 0 else { return }
        var (opened, created) = openOrCreate()
        if opened < 0 && errno == ENOENT {
            // Like the data directory: only the last component is created, owner-only.
            do {
                try FilePermissions.ensurePrivateDirectory(FilePermissions.parentDirectory(of: path))
            } catch {
                throw AuditFileError(path: path, errno: nil, description: "could not open the audit log \(path): \(error)")
            }
            (opened, created) = openOrCreate()
        }
        guard opened >= 0 else { throw .systemCall("open", path: path, errno: errno) }

        do throws(AuditFileError) {
            endsMidLine = false
            if created {
                try settleNewFile(opened)
            } else {
                var info = stat()
                guard fstat(opened, &info) == 0 else { throw .systemCall("inspect", path: path, errno: errno) }
                if info.st_mode & S_IFMT == S_IFREG && info.st_size > 0 {
                    endsMidLine = lastByte(size: info.st_size) != UInt8(ascii: "\n")
                }
            }
        } catch {
            _ = close(opened)
            throw error
        }
        descriptor = opened
    }

    /// Opens the log for appending, creating it if missing; says whether it was created.
    private func openOrCreate() -> (descriptor: Int32, created: Bool) {
        let flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC
        let created = openRetryingOnInterrupt(flags | O_EXCL)
        if created >= 0 || errno != EEXIST { return (created, created >= 0) }
        return (openRetryingOnInterrupt(flags), false)
    }

    /// Makes a file this writer just created owner-only and durable as a directory entry.
    ///
    /// The umask can only clear bits of 0600, but one that clears owner bits would leave a log
    /// its owner cannot append to; the file is empty, so setting 0600 exposes nothing. An
    /// existing log keeps whatever mode the operator gave it (a log shipper's group, say).
    private func settleNewFile(_ opened: Int32) throws(AuditFileError) {
        guard fchmod(opened, 0o600) == 0 else { throw .systemCall("set the mode of", path: path, errno: errno) }
        do {
            try SecureFileWriter.syncDirectory(FilePermissions.parentDirectory(of: path))
        } catch {
            throw AuditFileError(path: path, errno: nil, description: "could not sync the audit log's directory: \(error)")
        }
    }

    private func openRetryingOnInterrupt(_ flags: Int32) -> Int32 {
        while true {
            let opened = open(path, flags, 0o600)
            if opened < 0 && errno == EINTR { continue }
            return opened
        }
    }

    /// The file's last byte, read through a descriptor of its own: the append one is write-only.
    private func lastByte(size: off_t) -> UInt8? {
        let reader = open(path, O_RDONLY | O_CLOEXEC)
        guard reader >= 0 else { return nil }
        defer { _ = close(reader) }
        var byte: UInt8 = 0
        return pread(reader, &byte, 1, size - 1) == 1 ? byte : nil
    }

    private func closeDescriptor() {
        guard descriptor >= 0 else { return }
        _ = close(descriptor)
        descriptor = -1
    }
}

/// write(2), by a name the writer's own `write` method does not shadow.
private func posixWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}
