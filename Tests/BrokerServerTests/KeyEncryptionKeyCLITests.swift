import Foundation
import XCTest

/// The key-encryption key over the real binary. `broker keys rewrap --new-kek FILE`: with SQLite
/// the ring is in `keys_dir`, which holds files, not sealed values, so the command refuses and
/// says so, and a bad KEK file is named before anything is touched. `broker config check` names
/// a `key_encryption_key_file` that cannot be used.
final class KeyEncryptionKeyCLITests: XCTestCase {
    var broker: BrokerBinary!

    override func setUpWithError() throws {
        broker = try BrokerBinary.make()
    }

    override func tearDown() {
        broker.cleanUp()
    }

    func kekFile(mode: Int = 0o600) throws -> String {
        let path = broker.workDirectory.appendingPathComponent("new-kek").path
        let text = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() + "\n"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    func testRewrapRefusesARingInTheKeysDirectory() throws {
        let path = try kekFile()
        let result = try broker.run(["keys", "rewrap", "--new-kek", path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("applies to a key ring kept in the database"), result.stderr)
        XCTAssertTrue(result.stderr.contains("keys_dir"), result.stderr)
    }

    func testRewrapNamesAKEKFileOthersCanRead() throws {
        let path = try kekFile(mode: 0o644)
        let result = try broker.run(["keys", "rewrap", "--new-kek", path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--new-kek \(path) is accessible to group or others (mode 0644)"), result.stderr)
    }

    func testConfigCheckNamesAnUnusableKEKFileWithoutItsContents() throws {
        let path = try kekFile(mode: 0o640)
        let contents = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        var environment = broker.environment
        environment["BROKER_KEY_ENCRYPTION_KEY_FILE"] = path
        let checked = try BrokerBinary(workDirectory: broker.workDirectory, environment: environment).run(["config", "check"])
        XCTAssertEqual(checked.status, 1)
        let line = checked.stdout.split(separator: "\n").first { $0.hasPrefix("key_encryption_key_file ") }
        XCTAssertTrue(line?.contains("= \(path)  (environment BROKER_KEY_ENCRYPTION_KEY_FILE)") == true, checked.stdout)
        XCTAssertTrue(checked.stderr.contains("\(path) is accessible to group or others (mode 0640)"), checked.stderr)
        XCTAssertFalse((checked.stdout + checked.stderr).contains(contents))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        let fixed = try BrokerBinary(workDirectory: broker.workDirectory, environment: environment).run(["config", "check"])
        XCTAssertEqual(fixed.status, 0, fixed.stderr)
    }
}
