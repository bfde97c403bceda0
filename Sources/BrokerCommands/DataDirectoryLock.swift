import BrokerCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One `broker serve` per data directory: an advisory lock (`flock`) on `<data_dir>/serve.lock`,
/// which holds the pid of the broker that took it. Two servers on one SQLite store would each
/// keep their own throttles, key-ring timers and pruning, and nothing would say so. The system
/// drops the lock when the process ends, however it ends (`kill -9` included), so no stale lock
/// is ever left to clean up. The CLI commands do not take it: they work beside a running server
/// as they always have.
///
/// ```swift
/// let lock = try DataDirectoryLock.acquire(in: configuration.dataDirectory)
/// defer { lock.release() }
/// ```
public final class DataDirectoryLock: Sendable {
    public static let fileName = "serve.lock"

    public let path: String
    private let descriptor: Int32

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    /// - Throws: ``ConfigurationError`` naming the holder's pid when another live process holds
    ///   the lock, or naming the file when it cannot be opened.
    public static func acquire(in directory: String) throws -> DataDirectoryLock {
        let path = (directory as NSString).appendingPathComponent(fileName)
        // Close-on-exec: a child process must not inherit (and so prolong) the lock.
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ConfigurationError("cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            let holder = Self.readPID(descriptor)
            close(descriptor)
            guard reason == EWOULDBLOCK else {
                throw ConfigurationError("cannot lock \(path): \(String(cString: strerror(reason)))")
            }
            throw ConfigurationError(
                "data_dir \(directory) is already served by another broker (pid \(holder.map(String.init) ?? "unknown"), "
                    + "lock \(path)): stop it first, or give this one another data_dir")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(descriptor, 0)
        _ = pid.withCString { pwrite(descriptor, $0, strlen($0), 0) }
        return DataDirectoryLock(path: path, descriptor: descriptor)
    }

    /// Gives the lock up before the process ends (the file stays: removing it could let a third
    /// broker lock a new file while a second waits on the old one).
    public func release() {
        close(descriptor)
    }

    private static func readPID(_ descriptor: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return Int32(String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
