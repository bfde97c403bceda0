import Foundation
import Testing

@testable import BrokerCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("FilePermissions")
struct SecureFilePermissionsTests {
    @Test("a directory open to group or others is refused with the mode and the fix",
        arguments: [0o755, 0o750, 0o705, 0o701, 0o710, 0o777] as [mode_t])
    func openDirectoryRefused(_ mode: mode_t) throws {
        try withSecureFileTestDirectory { root in
            let keys = "\(root)/keys"
            try makeDirectory(keys, mode: mode)
            let error = try #require(throws: SecureFileError.self) { try FilePermissions.checkPrivate(directory: keys) }
            #expect(error.reason == .accessibleToOthers(mode: UInt32(mode)))
            #expect(error.path == keys)
            let octal = "0" + String(mode, radix: 8)
            #expect(
                error.description
                    == "directory \(keys) is accessible to group or others (mode \(octal)); run: chmod 700 \(keys)")
        }
    }

    @Test("an owner-only directory is accepted", arguments: [0o700, 0o500] as [mode_t])
    func privateDirectoryAccepted(_ mode: mode_t) throws {
        try withSecureFileTestDirectory { root in
            try makeDirectory("\(root)/keys", mode: mode)
            try FilePermissions.checkPrivate(directory: "\(root)/keys")
            chmod("\(root)/keys", 0o700)  // so the cleanup can remove it
        }
    }

    @Test("a key file open to group or others is refused with the mode and the fix",
        arguments: [0o644, 0o640, 0o604, 0o666, 0o660] as [mode_t])
    func openFileRefused(_ mode: mode_t) throws {
        try withSecureFileTestDirectory { root in
            let file = "\(root)/key.pem"
            try makeFile(file, mode: mode)
            let error = try #require(throws: SecureFileError.self) { try FilePermissions.checkPrivate(file: file) }
            #expect(error.reason == .accessibleToOthers(mode: UInt32(mode)))
            let octal = "0" + String(mode, radix: 8)
            #expect(
                error.description
                    == "file \(file) is accessible to group or others (mode \(octal)); run: chmod 600 \(file)")
        }
    }

    @Test("an owner-only key file is accepted", arguments: [0o600, 0o400] as [mode_t])
    func privateFileAccepted(_ mode: mode_t) throws {
        try withSecureFileTestDirectory { root in
            try makeFile("\(root)/key.pem", mode: mode)
            try FilePermissions.checkPrivate(file: "\(root)/key.pem")
        }
    }

    @Test("a symbolic link is refused as a key file even when its target is private")
    func symlinkFileRefused() throws {
        try withSecureFileTestDirectory { root in
            try makeFile("\(root)/real.pem", mode: 0o600)
            try FileManager.default.createSymbolicLink(atPath: "\(root)/key.pem", withDestinationPath: "real.pem")
            let error = try #require(throws: SecureFileError.self) {
                try FilePermissions.checkPrivate(file: "\(root)/key.pem")
            }
            #expect(error.reason == .symbolicLink)
            #expect(error.description.contains("\(root)/key.pem"))
        }
    }

    @Test("a symbolic link to a directory is judged by its target's mode")
    func symlinkDirectoryFollowed() throws {
        try withSecureFileTestDirectory { root in
            try makeDirectory("\(root)/private", mode: 0o700)
            try makeDirectory("\(root)/open", mode: 0o755)
            try FileManager.default.createSymbolicLink(atPath: "\(root)/keys-private", withDestinationPath: "private")
            try FileManager.default.createSymbolicLink(atPath: "\(root)/keys-open", withDestinationPath: "open")
            try FilePermissions.checkPrivate(directory: "\(root)/keys-private")
            #expect(throws: SecureFileError.self) { try FilePermissions.checkPrivate(directory: "\(root)/keys-open") }
        }
    }

    @Test("missing paths and wrong kinds of file are reported as such")
    func wrongKinds() throws {
        try withSecureFileTestDirectory { root in
            try makeFile("\(root)/file", mode: 0o600)
            try makeDirectory("\(root)/dir", mode: 0o700)

            let missingFile = try #require(throws: SecureFileError.self) {
                try FilePermissions.checkPrivate(file: "\(root)/nope")
            }
            #expect(missingFile.reason == .notFound)
            let missingDirectory = try #require(throws: SecureFileError.self) {
                try FilePermissions.checkPrivate(directory: "\(root)/nope")
            }
            #expect(missingDirectory.reason == .notFound)
            #expect(missingDirectory.description == "\(root)/nope does not exist")
            let directoryAsFile = try #require(throws: SecureFileError.self) {
                try FilePermissions.checkPrivate(file: "\(root)/dir")
            }
            #expect(directoryAsFile.reason == .notARegularFile)
            let fileAsDirectory = try #require(throws: SecureFileError.self) {
                try FilePermissions.checkPrivate(directory: "\(root)/file")
            }
            #expect(fileAsDirectory.reason == .notADirectory)
        }
    }

    @Test("ensurePrivateDirectory creates a missing directory with mode 0700")
    func ensureCreates() throws {
        try withSecureFileTestDirectory { root in
            let keys = "\(root)/keys"
            try FilePermissions.ensurePrivateDirectory(keys)
            #expect(try SecureFileDisk.permissionBits(keys) == 0o700)
            #expect(try SecureFileDisk.fileStatus(keys).st_mode & S_IFMT == S_IFDIR)
            try FilePermissions.checkPrivate(directory: keys)
            // Idempotent: a second call finds the directory and leaves it alone.
            try FilePermissions.ensurePrivateDirectory(keys)
            try FilePermissions.ensurePrivateDirectory(keys + "/")
        }
    }

    @Test("ensurePrivateDirectory leaves an existing directory's mode for checkPrivate to judge")
    func ensureLeavesExisting() throws {
        try withSecureFileTestDirectory { root in
            try makeDirectory("\(root)/keys", mode: 0o755)
            try FilePermissions.ensurePrivateDirectory("\(root)/keys")
            #expect(try SecureFileDisk.permissionBits("\(root)/keys") == 0o755)
            #expect(throws: SecureFileError.self) { try FilePermissions.checkPrivate(directory: "\(root)/keys") }
        }
    }

    @Test("ensurePrivateDirectory creates only the leaf, and says so when the parent is missing")
    func ensureNeedsParent() throws {
        try withSecureFileTestDirectory { root in
            let error = try #require(throws: SecureFileError.self) {
                try FilePermissions.ensurePrivateDirectory("\(root)/missing/keys")
            }
            #expect(error.reason == .missingParent)
            #expect(
                error.description
                    == "cannot create directory \(root)/missing/keys: its parent directory \(root)/missing does not exist")
            #expect(!FileManager.default.fileExists(atPath: "\(root)/missing"))
        }
    }

    @Test("ensurePrivateDirectory refuses a path that exists as a file, and an empty path")
    func ensureRefusesFile() throws {
        try withSecureFileTestDirectory { root in
            try makeFile("\(root)/keys", mode: 0o600)
            let error = try #require(throws: SecureFileError.self) {
                try FilePermissions.ensurePrivateDirectory("\(root)/keys")
            }
            #expect(error.reason == .notADirectory)
            let empty = try #require(throws: SecureFileError.self) { try FilePermissions.ensurePrivateDirectory("") }
            #expect(empty.reason == .invalidName)
        }
    }

    @Test("tightenDirectory sets 0700, after which checkPrivate accepts the directory")
    func tighten() throws {
        try withSecureFileTestDirectory { root in
            try makeDirectory("\(root)/keys", mode: 0o777)
            try FilePermissions.tightenDirectory("\(root)/keys")
            #expect(try SecureFileDisk.permissionBits("\(root)/keys") == 0o700)
            try FilePermissions.checkPrivate(directory: "\(root)/keys")

            try makeFile("\(root)/file", mode: 0o644)
            let error = try #require(throws: SecureFileError.self) {
                try FilePermissions.tightenDirectory("\(root)/file")
            }
            #expect(error.reason == .notADirectory)
            #expect(try SecureFileDisk.permissionBits("\(root)/file") == 0o644)
        }
    }

    @Test("the suggested chmod quotes paths the shell would split")
    func quotedFix() throws {
        try withSecureFileTestDirectory { root in
            let keys = "\(root)/my keys's"
            try makeDirectory(keys, mode: 0o750)
            let error = try #require(throws: SecureFileError.self) { try FilePermissions.checkPrivate(directory: keys) }
            #expect(error.description.hasSuffix(#"run: chmod 700 '\#(root)/my keys'\''s'"#))
        }
    }

    @Test("parent directories are named as the operator wrote the path",
        arguments: [("keys", "."), ("./keys", "."), ("/srv/keys", "/srv"), ("/srv/keys/", "/srv"), ("/keys", "/"),
            ("a//b", "a"), ("../keys", "..")])
    func parentNames(_ path: String, _ parent: String) {
        #expect(FilePermissions.parentDirectory(of: path) == parent)
    }
}

private func makeDirectory(_ path: String, mode: mode_t) throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    guard chmod(path, mode) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
}

private func makeFile(_ path: String, mode: mode_t) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data("key".utf8)) else {
        throw POSIXError(.EIO)
    }
    guard chmod(path, mode) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
}
