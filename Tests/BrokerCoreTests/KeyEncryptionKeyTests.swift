import BrokerCore
import BrokerCrypto
import Foundation
import XCTest

/// `key_encryption_key_file`: 32 random bytes in base64, the broker's alone; every way it can be
/// wrong is named, never its contents.
final class KeyEncryptionKeyTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-kek-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func write(_ text: String, mode: Int = 0o600, name: String = "kek") throws -> String {
        let path = directory.appendingPathComponent(name).path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    func message(_ path: String) -> String {
        do {
            _ = try KeyEncryptionKey(file: path)
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    func testOpenSSLsOutputIsReadWithItsNewlineAndNamedByItsIdentifier() throws {
        let bytes = SecureRandom.bytes(32)
        let path = try write(Data(bytes).base64EncodedString() + "\n")
        let kek = try KeyEncryptionKey(file: path)
        XCTAssertEqual(kek.identifier, try SealingKey(bytes: bytes).identifier)
        XCTAssertEqual(kek.file, path)
        XCTAssertFalse("\(kek)".contains(Data(bytes).base64EncodedString()), "never printed")
        // A symbolic link (a Kubernetes Secret volume) is followed; the target's mode counts.
        let link = directory.appendingPathComponent("link").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        XCTAssertEqual(try KeyEncryptionKey(file: link).identifier, kek.identifier)
    }

    /// PostgreSQL's rule for a private key file: the reader's own file 0600 or stricter; a file
    /// root owns and another user reads (a Kubernetes Secret volume with `fsGroup`) may be
    /// group-readable too; nothing for others, and no group write, ever.
    func testAKeyFileRootOwnsMayBeReadableByItsGroupForAnotherReader() {
        XCTAssertTrue(KeyEncryptionKey.isPrivate(mode: 0o100600, owner: 10001, reader: 10001))
        XCTAssertTrue(KeyEncryptionKey.isPrivate(mode: 0o100400, owner: 10001, reader: 10001))
        XCTAssertFalse(KeyEncryptionKey.isPrivate(mode: 0o100640, owner: 10001, reader: 10001), "its own file: owner only")
        XCTAssertTrue(KeyEncryptionKey.isPrivate(mode: 0o100440, owner: 0, reader: 10001), "a Secret volume with fsGroup")
        XCTAssertTrue(KeyEncryptionKey.isPrivate(mode: 0o100640, owner: 0, reader: 10001))
        XCTAssertFalse(KeyEncryptionKey.isPrivate(mode: 0o100660, owner: 0, reader: 10001), "group write")
        XCTAssertFalse(KeyEncryptionKey.isPrivate(mode: 0o100644, owner: 0, reader: 10001), "others read")
        XCTAssertFalse(KeyEncryptionKey.isPrivate(mode: 0o100640, owner: 0, reader: 0), "root reading its own file")
    }

    func testEveryWrongFileIsNamedWithWhatIsWrong() throws {
        let base64 = Data(SecureRandom.bytes(32)).base64EncodedString()
        let missing = directory.appendingPathComponent("missing").path
        XCTAssertEqual(message(missing), "key_encryption_key_file \(missing) does not exist")
        let open = try write(base64, mode: 0o644, name: "open")
        XCTAssertTrue(message(open).contains("\(open) is accessible to group or others (mode 0644)"), message(open))
        let groupReadable = try write(base64, mode: 0o640, name: "group")
        XCTAssertTrue(message(groupReadable).contains("mode 0640"), message(groupReadable))
        let notBase64 = try write("this is not base64!", name: "text")
        XCTAssertTrue(message(notBase64).contains("is not base64"), message(notBase64))
        let short = try write(Data(SecureRandom.bytes(16)).base64EncodedString(), name: "short")
        XCTAssertTrue(message(short).contains("holds 16 bytes, not 32"), message(short))
        XCTAssertTrue(message(directory.path).contains("is not a regular file"), message(directory.path))
        XCTAssertTrue(message("").contains("key_encryption_key_file is empty"))
        for path in [open, groupReadable] {
            XCTAssertFalse(message(path).contains(base64), "the contents are never shown")
        }
    }

    func testTheSettingIsAKnownKeyAndItsEnvironmentVariable() throws {
        XCTAssertTrue(BrokerConfiguration.keys.contains("key_encryption_key_file"))
        var configuration = BrokerConfiguration()
        try configuration.set("key_encryption_key_file", to: "/etc/broker/kek", source: "test")
        XCTAssertEqual(configuration.keyEncryptionKeyFile, "/etc/broker/kek")
    }
}
