#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Checks and sets the owner-only permissions the keys directory and its files must have.
///
/// The broker refuses to start on a keys directory or key file that group or others can read,
/// rather than silently fixing it: a key that was exposed must be rotated, and only the operator
/// knows whether it was. The one exception is ``tightenDirectory(_:)`` for a directory that holds
/// no key yet, where there is nothing to have leaked.
///
/// ```swift
/// try FilePermissions.ensurePrivateDirectory("./keys")        // mkdir ./keys, mode 0700, if missing
/// try FilePermissions.checkPrivate(directory: "./keys")       // throws if mode & 077 != 0
/// try FilePermissions.checkPrivate(file: "./keys/active.pem") // throws if a symlink or mode & 077 != 0
/// ```
public enum FilePermissions {
    /// Creates the directory with mode 0700 if it does not exist. Only the last component is
    /// created: a missing parent usually means a mistyped path, which should fail loudly rather
    /// than grow a new tree somewhere unexpected. An existing directory is left as it is; check it
    /// with ``checkPrivate(directory:)``.
    public static func ensurePrivateDirectory(_ path: String) throws {
        guard !path.isEmpty else {
            throw SecureFileError(.invalidName, path: path, description: "the directory path is empty")
        }
        if mkdir(path, 0o700) == 0 {
            // The umask may have cleared owner bits; the directory is still empty, so fixing its
            // mode now exposes nothing.
            guard chmod(path, 0o700) == 0 else {
                let code = errno
                throw SecureFileError.systemCall("set the mode of", path: path, errno: code)
            }
            return
        }
        let code = errno
        switch code {
        case EEXIST:
            var info = stat()
            guard stat(path, &info) == 0 else {
                let code = errno
                throw SecureFileError.systemCall("inspect", path: path, errno: code)
            }
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw SecureFileError(
                    .notADirectory, path: path, description: "\(path) exists but is not a directory")
            }
        case ENOENT:
            let parent = parentDirectory(of: path)
            throw SecureFileError(
                .missingParent,
                path: path,
                description: "cannot create directory \(path): its parent directory \(parent) does not exist"
            )
        default:
            throw SecureFileError.systemCall("create directory", path: path, errno: code)
        }
    }

    /// Throws unless `directory` is a directory with no group or other permission bits.
    ///
    /// A symbolic link to a directory is followed: pointing the keys directory at a mounted
    /// secrets volume is a legitimate setup, and the target's mode is the one that protects the keys.
    public static func checkPrivate(directory: String) throws {
        var info = stat()
        guard stat(directory, &info) == 0 else { throw inspectionError(directory, errno: errno) }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw SecureFileError(
                .notADirectory, path: directory, description: "\(directory) exists but is not a directory")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw SecureFileError.accessibleToOthers("directory", path: directory, mode: info.st_mode, fix: "700")
        }
    }

    /// Throws unless `file` is a regular file (not a symbolic link) with no group or other
    /// permission bits.
    ///
    /// Symbolic links are refused: the broker writes key files by renaming over them, which would
    /// silently replace the link, and a link can point a "key" at a file someone else controls.
    public static func checkPrivate(file: String) throws {
        var info = stat()
        guard lstat(file, &info) == 0 else { throw inspectionError(file, errno: errno) }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            break
        case S_IFLNK:
            throw SecureFileError(
                .symbolicLink, path: file,
                description: "\(file) is a symbolic link; key files must be regular files")
        default:
            throw SecureFileError(
                .notARegularFile, path: file, description: "\(file) exists but is not a regular file")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw SecureFileError.accessibleToOthers("file", path: file, mode: info.st_mode, fix: "600")
        }
    }

    /// Sets a directory's mode to 0700. Use only while it holds no key: a key that sat in an open
    /// directory must be treated as exposed, which no chmod undoes.
    public static func tightenDirectory(_ path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw inspectionError(path, errno: errno) }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw SecureFileError(.notADirectory, path: path, description: "\(path) exists but is not a directory")
        }
        guard chmod(path, 0o700) == 0 else {
            let code = errno
            throw SecureFileError.systemCall("set the mode of", path: path, errno: code)
        }
    }
}

extension FilePermissions {
    static func inspectionError(_ path: String, errno code: Int32) -> SecureFileError {
        if code == ENOENT {
            return SecureFileError(.notFound, path: path, description: "\(path) does not exist")
        }
        return SecureFileError.systemCall("inspect", path: path, errno: code)
    }

    /// The path's parent as the operator would write it: "keys" → ".", "/srv/keys/" → "/srv".
    static func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        var parent = trimmed[..<slash]
        while parent.count > 1, parent.hasSuffix("/") { parent = parent.dropLast() }
        return parent.isEmpty ? "/" : String(parent)
    }
}
