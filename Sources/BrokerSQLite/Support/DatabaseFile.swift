import BrokerCore
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Creates the database file, readable and writable by its owner only, before SQLite opens it.
///
/// SQLite would create a missing file with the process's umask applied to 0644; the database holds
/// password hashes and server secrets, so we create it ourselves with mode 0600. SQLite gives its
/// `-wal` and `-shm` companions the permissions of the main file.
enum DatabaseFile {
    static func prepare(path: String, logger: Logger) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            throw StoreError.engine("cannot open the database \(path): directory \(directory) does not exist")
        }

        let descriptor = path.withCString { Self.openOrCreate($0) }
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            throw StoreError.engine("cannot open the database \(path): \(reason)")
        }
        defer { _ = close(descriptor) }

        var status = stat()
        if fstat(descriptor, &status) == 0, status.st_mode & 0o077 != 0 {
            logger.warning("the database file is accessible to other users; consider chmod 600", metadata: [
                "path": "\(path)",
                "mode": "\(String(status.st_mode & 0o777, radix: 8))",
            ])
        }
    }

    private static func openOrCreate(_ path: UnsafePointer<CChar>) -> Int32 {
        open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    }
}
