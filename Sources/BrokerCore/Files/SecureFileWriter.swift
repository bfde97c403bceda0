#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where an injected failure fires, for crash-safety tests.
///
/// Each case is the moment just after a step of ``SecureFileWriter/write(_:to:)`` has completed;
/// a failure hook that throws there makes the write stop as a crash or an I/O error would.
public enum SecureFileStep: String, Sendable, CaseIterable {
    /// The temporary file exists, empty, with mode 0600.
    case afterCreateTemp
    /// Every byte is written to the temporary file, not yet synced.
    case afterWriteTemp
    /// The temporary file is synced to disk and closed.
    case afterFsyncTemp
    /// The temporary file has replaced the target name.
    case afterRename
    /// The directory entry for the rename is synced to disk.
    case afterFsyncDirectory
}

/// Writes files, such as private signing keys, that must never be readable by group or others
/// and never be seen half-written, even across a crash or power loss.
///
/// A write goes to a fresh temporary file created with mode 0600, is synced, and is renamed over
/// the target; then the directory is synced so the rename itself survives a power loss. Readers
/// therefore see the old content or the new, never a mix, and the key is never on disk with wider
/// permissions, not even for an instant. A crash can leave a temporary file behind:
/// ``removeStaleTemporaries(in:)`` clears them at startup.
///
/// All calls block on disk I/O; run them off the event loop.
///
/// ```swift
/// try FilePermissions.ensurePrivateDirectory("./keys")
/// try FilePermissions.checkPrivate(directory: "./keys")
/// _ = try SecureFileWriter.removeStaleTemporaries(in: "./keys")
/// let writer = SecureFileWriter(directory: "./keys")
/// try writer.write(Array(pem.utf8), to: "2025-06-01-es256.pem")
/// ```
public struct SecureFileWriter: Sendable {
    /// The directory files are written into.
    public let directory: String
    private let failurePoint: (@Sendable (SecureFileStep) throws -> Void)?

    /// - Parameters:
    ///   - directory: an existing directory; see ``FilePermissions/ensurePrivateDirectory(_:)``.
    ///   - failurePoint: called after each step of a write; if it throws, the write stops there,
    ///     cleans up as it would after a real error, and rethrows. For tests only.
    public init(directory: String, failurePoint: (@Sendable (SecureFileStep) throws -> Void)? = nil) {
        self.directory = directory
        self.failurePoint = failurePoint
    }

    /// Atomically replaces (or creates) `<directory>/<name>` with `bytes`, mode 0600.
    ///
    /// If this throws before the rename, the target is untouched and the temporary file is gone.
    /// If it throws after (only an injected failure or a failed directory sync can), the new
    /// content is in place but may not yet be durable.
    ///
    /// - Parameter name: a plain file name: no "/", not "." or "..", not starting with "." (names
    ///   starting with "." are reserved for temporary files).
    public func write(_ bytes: [UInt8], to name: String) throws {
        try Self.validate(name: name)
        let target = path(of: name)
        var descriptor: Int32 = -1
        var temporary: String?
        do {
            let temporaryPath: String
            (descriptor, temporaryPath) = try createTemporary(for: name)
            temporary = temporaryPath
            try failurePoint?(.afterCreateTemp)

            try Self.writeAll(bytes, to: descriptor, path: temporaryPath)
            try failurePoint?(.afterWriteTemp)

            guard Self.retryingOnInterrupt({ fsync(descriptor) }) == 0 else {
                let code = errno
                throw SecureFileError.systemCall("sync", path: temporaryPath, errno: code)
            }
            let closed = close(descriptor)
            let closeError = errno
            descriptor = -1
            // On Linux the descriptor is released even when close reports EINTR.
            guard closed == 0 || closeError == EINTR else {
                throw SecureFileError.systemCall("close", path: temporaryPath, errno: closeError)
            }
            try failurePoint?(.afterFsyncTemp)

            guard rename(temporaryPath, target) == 0 else {
                let code = errno
                throw SecureFileError.systemCall("rename \(temporaryPath) to", path: target, errno: code)
            }
            temporary = nil
            try failurePoint?(.afterRename)

            try Self.syncDirectory(directory)
            try failurePoint?(.afterFsyncDirectory)
        } catch {
            if descriptor >= 0 { _ = close(descriptor) }
            if let temporary { _ = unlink(temporary) }
            throw error
        }
    }

    /// Removes `<directory>/<name>` and syncs the directory so the removal survives a crash.
    ///
    /// - Returns: false if there was no such file, which is not an error: a removal interrupted
    ///   after the unlink is simply repeated.
    @discardableResult
    public func remove(_ name: String) throws -> Bool {
        try Self.validate(name: name)
        let target = path(of: name)
        guard unlink(target) == 0 else {
            let code = errno
            if code == ENOENT { return false }
            throw SecureFileError.systemCall("remove", path: target, errno: code)
        }
        try Self.syncDirectory(directory)
        return true
    }

    /// Removes the temporary files (`.<name>.tmp-<16 hex digits>`) a crashed write left in
    /// `directory`, and only those: other dot files such as `.gitignore` are not touched.
    ///
    /// - Returns: the names removed, sorted.
    public static func removeStaleTemporaries(in directory: String) throws -> [String] {
        guard let stream = opendir(directory) else {
            let code = errno
            throw SecureFileError.systemCall("list", path: directory, errno: code)
        }
        var candidates: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                let code = errno
                closedir(stream)
                if code != 0 { throw SecureFileError.systemCall("list", path: directory, errno: code) }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if isTemporaryName(name) { candidates.append(name) }
        }

        var removed: [String] = []
        let prefix = Array(directory.utf8) + [UInt8(ascii: "/")]
        for name in candidates {
            // Raw bytes all the way, so a name that is not valid UTF-8 is still the name unlinked.
            var fullPath = (prefix + name).map { CChar(bitPattern: $0) }
            fullPath.append(0)
            let displayPath = directory + "/" + String(decoding: name, as: UTF8.self)
            var info = stat()
            guard lstat(fullPath, &info) == 0 else {
                let code = errno
                if code == ENOENT { continue }
                throw SecureFileError.systemCall("inspect", path: displayPath, errno: code)
            }
            // Only regular files: a crashed write never leaves anything else under this name.
            guard info.st_mode & S_IFMT == S_IFREG else { continue }
            guard unlink(fullPath) == 0 else {
                let code = errno
                if code == ENOENT { continue }
                throw SecureFileError.systemCall("remove", path: displayPath, errno: code)
            }
            removed.append(String(decoding: name, as: UTF8.self))
        }
        if !removed.isEmpty { try syncDirectory(directory) }
        return removed.sorted()
    }
}

extension SecureFileWriter {
    static let temporaryMarker = Array(".tmp-".utf8)
    static let randomSuffixLength = 16
    /// Leaves room for the temporary name's "." prefix and 21-byte suffix within NAME_MAX (255).
    static let maximumNameLength = 200

    func path(of name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func validate(name: String) throws {
        let bytes = Array(name.utf8)
        let valid = !bytes.isEmpty
            && bytes.count <= maximumNameLength
            && bytes.first != UInt8(ascii: ".")
            && !bytes.contains(UInt8(ascii: "/"))
            && !bytes.contains(0)
        guard valid else {
            throw SecureFileError(
                .invalidName,
                path: name,
                description: "invalid file name \(name.debugDescription): it must be a plain name of at most "
                    + "\(maximumNameLength) bytes, without \"/\" and not starting with \".\""
            )
        }
    }

    /// Whether a directory entry is one of our temporary files: `.` + name + `.tmp-` + 16 hex.
    static func isTemporaryName(_ bytes: [UInt8]) -> Bool {
        let suffixLength = temporaryMarker.count + randomSuffixLength
        guard bytes.count > 1 + suffixLength, bytes.first == UInt8(ascii: ".") else { return false }
        let random = bytes.suffix(randomSuffixLength)
        let marker = bytes.dropLast(randomSuffixLength).suffix(temporaryMarker.count)
        return marker.elementsEqual(temporaryMarker)
            && random.allSatisfy { byte in
                let digits = UInt8(ascii: "0")...UInt8(ascii: "9")
                let letters = UInt8(ascii: "a")...UInt8(ascii: "f")
                return digits.contains(byte) || letters.contains(byte)
            }
    }

    /// Creates a new temporary file next to the target, exclusively, with mode 0600 from birth.
    private func createTemporary(for name: String) throws -> (Int32, String) {
        let flags = O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW
        var attempts = 0
        while true {
            var random = String(UInt64.random(in: .min ... .max), radix: 16)
            while random.count < Self.randomSuffixLength { random = "0" + random }
            let temporary = path(of: ".\(name).tmp-\(random)")
            let descriptor = Self.retryingOnInterrupt { open(temporary, flags, 0o600) }
            let code = errno
            if descriptor >= 0 {
                do {
                    try Self.ensureOwnerOnlyMode(descriptor, path: temporary)
                } catch {
                    _ = close(descriptor)
                    _ = unlink(temporary)
                    throw error
                }
                return (descriptor, temporary)
            }
            // A clash with another writer's random name is possible only in theory; try another.
            attempts += 1
            guard code == EEXIST, attempts < 8 else {
                throw SecureFileError.systemCall("create", path: temporary, errno: code)
            }
        }
    }

    /// Confirms the new, still empty file is owner-only before any key byte goes into it.
    ///
    /// The umask can only clear bits from 0600, so group or other bits here mean the filesystem
    /// ignores modes (FAT, some network mounts): refuse rather than write a key others can read.
    /// A umask that clears owner bits (0277, say) would leave a key its owner cannot read back;
    /// the file is empty, so restoring 0600 now exposes nothing.
    private static func ensureOwnerOnlyMode(_ descriptor: Int32, path: String) throws {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let code = errno
            throw SecureFileError.systemCall("inspect", path: path, errno: code)
        }
        guard info.st_mode & 0o077 == 0 else {
            let mode = UInt32(info.st_mode) & 0o7777
            throw SecureFileError(
                .accessibleToOthers(mode: mode),
                path: path,
                description: "\(path) was created with mode 0\(String(mode, radix: 8)) although 0600 was "
                    + "requested: its filesystem does not enforce permissions; keep keys on one that does"
            )
        }
        if info.st_mode & 0o777 != 0o600 {
            guard fchmod(descriptor, 0o600) == 0 else {
                let code = errno
                throw SecureFileError.systemCall("set the mode of", path: path, errno: code)
            }
        }
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32, path: String) throws {
        try bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = systemWrite(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    throw SecureFileError.systemCall("write", path: path, errno: code)
                }
                // A regular file that accepts nothing is full; waiting would loop forever.
                guard written > 0 else { throw SecureFileError.systemCall("write", path: path, errno: ENOSPC) }
                offset += written
            }
        }
    }

    /// Syncs a directory so that entries just created, renamed or removed in it are durable.
    static func syncDirectory(_ directory: String) throws {
        let descriptor = retryingOnInterrupt { open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard descriptor >= 0 else {
            let code = errno
            throw SecureFileError.systemCall("open directory", path: directory, errno: code)
        }
        defer { _ = close(descriptor) }
        guard retryingOnInterrupt({ fsync(descriptor) }) == 0 else {
            let code = errno
            throw SecureFileError.systemCall("sync directory", path: directory, errno: code)
        }
    }

    static func retryingOnInterrupt(_ call: () -> Int32) -> Int32 {
        while true {
            let result = call()
            if result == -1 && errno == EINTR { continue }
            return result
        }
    }
}

/// The C library's write(2), reachable by a plain name from inside a type whose own `write`
/// method would otherwise shadow it.
private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}
