import Foundation
import Testing

@testable import BrokerCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("SecureFileWriter")
struct SecureFileWriterTests {
    @Test("a written file has exactly mode 0600 and the exact bytes, whatever the umask")
    func modeIgnoresUmask() throws {
        try withSecureFileTestDirectory { directory in
            // The umask is process-wide, so this is the only test that changes it, and it restores it.
            let saved = umask(0)
            defer { umask(saved) }
            let writer = SecureFileWriter(directory: directory)

            try writer.write(Array("written under umask 000".utf8), to: "open.pem")
            #expect(try SecureFileDisk.permissionBits("\(directory)/open.pem") == 0o600)
            #expect(try SecureFileDisk.contents("\(directory)/open.pem") == Array("written under umask 000".utf8))

            // A umask that clears owner bits must not leave a key its owner cannot read.
            umask(0o277)
            try writer.write(Array("written under umask 277".utf8), to: "strict.pem")
            #expect(try SecureFileDisk.permissionBits("\(directory)/strict.pem") == 0o600)
            #expect(try SecureFileDisk.contents("\(directory)/strict.pem") == Array("written under umask 277".utf8))

            try FilePermissions.ensurePrivateDirectory("\(directory)/made-under-277")
            #expect(try SecureFileDisk.permissionBits("\(directory)/made-under-277") == 0o700)
            umask(0)
            try FilePermissions.ensurePrivateDirectory("\(directory)/made-under-000")
            #expect(try SecureFileDisk.permissionBits("\(directory)/made-under-000") == 0o700)
        }
    }

    @Test("content round-trips for empty, small and multi-megabyte files", arguments: [0, 1, 4096, 3_000_001])
    func contentIsExact(_ size: Int) throws {
        try withSecureFileTestDirectory { directory in
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            try SecureFileWriter(directory: directory).write(bytes, to: "key.bin")
            #expect(try SecureFileDisk.contents("\(directory)/key.bin") == bytes)
            #expect(try SecureFileDisk.entries(directory) == ["key.bin"])
        }
    }

    @Test("an overwrite replaces the file by rename: an open reader keeps the old bytes")
    func overwriteIsAtomic() throws {
        try withSecureFileTestDirectory { directory in
            let writer = SecureFileWriter(directory: directory)
            let path = "\(directory)/key.pem"
            try writer.write(Array("old".utf8), to: "key.pem")
            let oldInode = try SecureFileDisk.inode(path)
            let reader = try #require(FileHandle(forReadingAtPath: path))
            defer { try? reader.close() }

            try writer.write(Array("new and longer".utf8), to: "key.pem")

            // Rewriting in place would have truncated what the open reader sees.
            #expect(Array(try reader.readToEnd() ?? Data()) == Array("old".utf8))
            #expect(try SecureFileDisk.contents(path) == Array("new and longer".utf8))
            #expect(try SecureFileDisk.inode(path) != oldInode)
            #expect(try SecureFileDisk.permissionBits(path) == 0o600)
            #expect(try SecureFileDisk.entries(directory) == ["key.pem"])
        }
    }

    @Test("a write replaces a symbolic link at the target name rather than writing through it")
    func doesNotFollowTargetSymlink() throws {
        try withSecureFileTestDirectory { directory in
            let outside = "\(directory)/outside"
            try Data("victim".utf8).write(to: URL(fileURLWithPath: outside))
            try FileManager.default.createDirectory(atPath: "\(directory)/keys", withIntermediateDirectories: false)
            try FileManager.default.createSymbolicLink(
                atPath: "\(directory)/keys/key.pem", withDestinationPath: outside)

            try SecureFileWriter(directory: "\(directory)/keys").write(Array("key".utf8), to: "key.pem")
            #expect(try SecureFileDisk.contents(outside) == Array("victim".utf8))
            try FilePermissions.checkPrivate(file: "\(directory)/keys/key.pem")
            #expect(try SecureFileDisk.contents("\(directory)/keys/key.pem") == Array("key".utf8))
        }
    }

    @Test("concurrent writes to one name leave exactly one writer's full content and no temporaries")
    func concurrentWriters() async throws {
        try await withSecureFileTestDirectory { directory in
            let writer = SecureFileWriter(directory: directory)
            let payloads = (0..<8).map { index in [UInt8](repeating: UInt8(index), count: 50_000 + index) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for payload in payloads {
                    group.addTask { try writer.write(payload, to: "key.pem") }
                }
                try await group.waitForAll()
            }
            #expect(payloads.contains(try SecureFileDisk.contents("\(directory)/key.pem")))
            #expect(try SecureFileDisk.entries(directory) == ["key.pem"])
        }
    }

    struct InjectedCrash: Error, Equatable {
        let step: SecureFileStep
    }

    @Test(
        "a failure at any step leaves the old or the new content, never a partial or missing file",
        arguments: SecureFileStep.allCases, [true, false])
    func injectedFailure(at step: SecureFileStep, hadOldContent: Bool) throws {
        try withSecureFileTestDirectory { live in
            try withSecureFileTestDirectory { crashImage in
                let old = Array("-----BEGIN OLD KEY-----".utf8)
                let new = [UInt8](repeating: 0x4B, count: 200_000)
                if hadOldContent { try SecureFileWriter(directory: live).write(old, to: "key.pem") }

                let writer = SecureFileWriter(directory: live) { current in
                    guard current == step else { return }
                    // Copy the directory as it stands: exactly what a crash at this instant leaves.
                    try SecureFileDisk.snapshotDirectory(live, into: crashImage)
                    throw InjectedCrash(step: current)
                }
                #expect(throws: InjectedCrash(step: step)) { try writer.write(new, to: "key.pem") }

                let renamed = step == .afterRename || step == .afterFsyncDirectory
                let expected: [UInt8]? = renamed ? new : (hadOldContent ? old : nil)

                // After the error was handled: the target is intact and the temporary file is gone.
                #expect(try SecureFileDisk.contentsIfPresent("\(live)/key.pem") == expected)
                #expect(try SecureFileDisk.entries(live) == (expected == nil ? [] : ["key.pem"]))

                // After a crash at that instant: the target is intact, plus at most one temporary.
                #expect(try SecureFileDisk.contentsIfPresent("\(crashImage)/key.pem") == expected)
                let leftovers = try SecureFileDisk.entries(crashImage).filter { $0 != "key.pem" }
                #expect(leftovers.count == (renamed ? 0 : 1))
                #expect(leftovers.allSatisfy { $0.hasPrefix(".key.pem.tmp-") })
                #expect(try SecureFileWriter.removeStaleTemporaries(in: crashImage) == leftovers)
                #expect(try SecureFileDisk.entries(crashImage) == (expected == nil ? [] : ["key.pem"]))
            }
        }
    }

    @Test(
        "names that are not plain file names are rejected before touching the disk",
        arguments: ["", ".", "..", ".hidden", ".key.pem.tmp-0123456789abcdef", "a/b", "/etc/passwd", "../escape",
            "keys/", "nul\u{0}byte", String(repeating: "k", count: 201)])
    func badNamesRejected(_ name: String) throws {
        try withSecureFileTestDirectory { directory in
            let writer = SecureFileWriter(directory: directory)
            let error = try #require(throws: SecureFileError.self) { try writer.write([1, 2, 3], to: name) }
            #expect(error.reason == .invalidName)
            #expect(throws: SecureFileError.self) { try writer.remove(name) }
            #expect(try SecureFileDisk.entries(directory).isEmpty)
        }
    }

    @Test("plain names with dots, spaces and non-ASCII letters are accepted",
        arguments: ["key.pem", "a..b", "2025-06-01 es256.pem", "ключ.pem", String(repeating: "k", count: 200)])
    func goodNamesAccepted(_ name: String) throws {
        try withSecureFileTestDirectory { directory in
            try SecureFileWriter(directory: directory).write([1, 2, 3], to: name)
            #expect(try SecureFileDisk.entries(directory) == [name])
        }
    }

    @Test("remove deletes the file, and removing it again reports there was nothing to remove")
    func removeIsIdempotent() throws {
        try withSecureFileTestDirectory { directory in
            let writer = SecureFileWriter(directory: directory)
            try writer.write([1], to: "retired.pem")
            try writer.write([2], to: "active.pem")
            #expect(try writer.remove("retired.pem") == true)
            #expect(try SecureFileDisk.entries(directory) == ["active.pem"])
            #expect(try writer.remove("retired.pem") == false)
        }
    }

    @Test("removeStaleTemporaries removes only regular files named like our temporaries")
    func staleTemporaries() throws {
        try withSecureFileTestDirectory { directory in
            let stale = [".key.pem.tmp-0123456789abcdef", ".a.tmp-ffffffffffffffff"]
            let kept = [
                ".gitignore", "README.md", "key.pem", ".key.pem.tmp-0123", ".key.pem.tmp-0123456789ABCDEF",
                ".tmp-0123456789abcdef", "key.pem.tmp-0123456789abcdef", ".key.pem.tmp-0123456789abcdefa",
            ]
            for name in stale + kept {
                #expect(FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: Data("x".utf8)))
            }
            try FileManager.default.createDirectory(
                atPath: "\(directory)/.d.tmp-0123456789abcdef", withIntermediateDirectories: false)
            try FileManager.default.createSymbolicLink(
                atPath: "\(directory)/.l.tmp-0123456789abcdef", withDestinationPath: "key.pem")

            #expect(try SecureFileWriter.removeStaleTemporaries(in: directory) == stale.sorted())
            let untouched = kept + [".d.tmp-0123456789abcdef", ".l.tmp-0123456789abcdef"]
            #expect(try SecureFileDisk.entries(directory) == untouched.sorted())
            #expect(try SecureFileWriter.removeStaleTemporaries(in: directory) == [])
        }
    }

    @Test("errors name the path and the failing step")
    func errorsAreDescriptive() throws {
        try withSecureFileTestDirectory { directory in
            let missing = "\(directory)/does-not-exist"
            let writeError = try #require(throws: SecureFileError.self) {
                try SecureFileWriter(directory: missing).write([1], to: "key.pem")
            }
            #expect(writeError.reason == .systemCall(operation: "create", errno: ENOENT))
            #expect(writeError.description.hasPrefix("could not create \(missing)/.key.pem.tmp-"))
            #expect(writeError.description.contains("(errno \(ENOENT))"))

            let listError = try #require(throws: SecureFileError.self) {
                try SecureFileWriter.removeStaleTemporaries(in: missing)
            }
            #expect(listError.path == missing)
        }
    }
}

// MARK: - Helpers shared by the SecureFile* tests

/// Runs `body` with a fresh directory under the system temporary directory, removed afterwards.
func withSecureFileTestDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let path = try makeSecureFileTestDirectory()
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

func withSecureFileTestDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = try makeSecureFileTestDirectory()
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

private func makeSecureFileTestDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("SecureFileTests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    return path
}

/// Small file-system probes for the SecureFile* tests, namespaced to stay out of other tests' way.
enum SecureFileDisk {
    static func entries(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    static func contents(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func contentsIfPresent(_ path: String) throws -> [UInt8]? {
        FileManager.default.fileExists(atPath: path) ? try contents(path) : nil
    }

    static func fileStatus(_ path: String) throws -> stat {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return info
    }

    static func permissionBits(_ path: String) throws -> UInt32 {
        UInt32(try fileStatus(path).st_mode & 0o7777)
    }

    static func inode(_ path: String) throws -> UInt64 {
        UInt64(try fileStatus(path).st_ino)
    }

    /// Copies every entry of `source` into `destination`, checking on the way that each one is
    /// owner-only: a crash must never leave key material readable by others, even in a temporary.
    static func snapshotDirectory(_ source: String, into destination: String) throws {
        for name in try entries(source) {
            #expect(try permissionBits("\(source)/\(name)") == 0o600, "\(name) is not 0600")
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(source)/\(name)"))
            #expect(FileManager.default.createFile(atPath: "\(destination)/\(name)", contents: data))
        }
    }
}
