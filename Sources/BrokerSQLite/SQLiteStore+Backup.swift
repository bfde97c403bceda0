import BrokerCore
import Foundation
import SQLiteNIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension SQLiteStore {
    /// Writes a consistent copy of the database to a new file at `path` with `VACUUM INTO`,
    /// while the store, and servers and commands in other processes, keep working on it.
    ///
    /// The copy is one read snapshot: it holds every transaction committed before it started and
    /// none after. In WAL mode a reader neither waits for writers nor makes them wait, so a
    /// running `broker serve` is not paused. The file is created here, with mode 0600 and
    /// `O_EXCL` (it holds password hashes and server secrets; an existing file, or a link planted
    /// in its place, is refused rather than overwritten), and synced to disk before this returns.
    /// On failure the partial file is removed.
    ///
    /// ```swift
    /// try await store.backUp(to: "/var/backups/broker-2026-12-04.sqlite3")
    /// ```
    public func backUp(to path: String) async throws {
        let path = URL(fileURLWithPath: path).standardizedFileURL.path
        try BackupFile.create(path)
        do {
            try await self.withExclusiveConnection { connection in
                // VACUUM INTO writes into an existing file only if it is empty: the one just made.
                _ = try await connection.rows("VACUUM INTO ?", [.text(path)])
            }
            try BackupFile.sync(path)
        } catch {
            _ = unlink(path)
            throw SQLiteErrors.storeError(error)
        }
    }
}

private enum BackupFile {
    static func create(_ path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let code = errno
            if code == EEXIST {
                throw StoreError.engine("\(path) already exists: a backup never overwrites a file; choose a new name")
            }
            throw StoreError.engine("cannot create the backup \(path): \(String(cString: strerror(code)))")
        }
        _ = close(descriptor)
    }

    static func sync(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0, fsync(descriptor) == 0 else {
            let reason = String(cString: strerror(errno))
            if descriptor >= 0 { _ = close(descriptor) }
            throw StoreError.engine("cannot sync the backup \(path): \(reason)")
        }
        _ = close(descriptor)
    }
}
