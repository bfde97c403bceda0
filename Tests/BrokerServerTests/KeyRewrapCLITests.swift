import Foundation
import XCTest

/// `broker keys rewrap --new-kek FILE` over the real binary. With SQLite the ring is in
/// `keys_dir`, which holds files, not sealed values: the command refuses and says so, and a bad
/// KEK file is named before anything is touched.
final class KeyRewrapCLITests: XCTestCase {
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
}
