#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a key file or the keys directory could not be written, removed or trusted.
///
/// The ``description`` is written for the operator who reads it in a startup log, so it names the
/// path and, where there is one, the command that fixes it; ``reason`` is for code that needs to
/// tell the cases apart.
///
/// ```swift
/// do { try FilePermissions.checkPrivate(directory: "./keys") }
/// catch let error as SecureFileError { logger.critical("\(error)"); exit(1) }
/// // directory ./keys is accessible to group or others (mode 0755); run: chmod 700 ./keys
/// ```
public struct SecureFileError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, independent of wording.
    public enum Reason: Sendable, Equatable {
        /// A file name that is not a plain name inside the directory (has "/", is "." or "..",
        /// starts with "." or is empty), or an empty path.
        case invalidName
        /// The path does not exist.
        case notFound
        /// The directory to create has no parent directory.
        case missingParent
        /// The path exists but is not a directory.
        case notADirectory
        /// The path exists but is neither a regular file nor a symbolic link.
        case notARegularFile
        /// The path is a symbolic link where a key file was expected.
        case symbolicLink
        /// Group or other permission bits are set; `mode` holds the permission bits found.
        case accessibleToOthers(mode: UInt32)
        /// A system call failed; `operation` says which step, `errno` why.
        case systemCall(operation: String, errno: Int32)
    }

    public let reason: Reason
    /// The path the error is about.
    public let path: String
    public let description: String

    init(_ reason: Reason, path: String, description: String) {
        self.reason = reason
        self.path = path
        self.description = description
    }

    /// A failed system call, worded as "could not <operation> <path>: <strerror> (errno N)".
    static func systemCall(_ operation: String, path: String, errno code: Int32) -> SecureFileError {
        SecureFileError(
            .systemCall(operation: operation, errno: code),
            path: path,
            description: "could not \(operation) \(path): \(String(cString: strerror(code))) (errno \(code))"
        )
    }

    /// Too-open permissions, with the chmod that fixes them.
    static func accessibleToOthers(_ kind: String, path: String, mode: mode_t, fix: String) -> SecureFileError {
        let bits = UInt32(mode) & 0o7777
        var octal = String(bits, radix: 8)
        while octal.count < 4 { octal = "0" + octal }
        return SecureFileError(
            .accessibleToOthers(mode: bits),
            path: path,
            description: "\(kind) \(path) is accessible to group or others (mode \(octal)); "
                + "run: chmod \(fix) \(shellQuoted(path))"
        )
    }

    /// Quotes a path for the suggested command only when it needs it, so the common case reads plainly.
    static func shellQuoted(_ path: String) -> String {
        let plain = path.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "/"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: ":"), UInt8(ascii: "@"):
                return true
            default:
                return false
            }
        }
        if plain && !path.isEmpty { return path }
        return "'" + path.replacing("'", with: #"'\''"#) + "'"
    }
}
