import BrokerCore
import XCTest

/// `broker --version` prints the version defined once in `BrokerVersion`, and nothing else,
/// without needing a configuration or a data directory.
final class VersionProcessTests: XCTestCase {
    func testVersionFlagPrintsTheVersionAndExitsZero() throws {
        var binary = try BrokerBinary.make()
        defer { binary.cleanUp() }
        // No configuration at all: a version query must not read or create anything.
        binary.environment["BROKER_CONFIG"] = binary.workDirectory.appendingPathComponent("absent.yaml").path
        let result = try binary.run(["--version"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "broker \(BrokerVersion.current)\n")
        XCTAssertNotNil(BrokerVersion.current.wholeMatch(of: /\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?/), "a semantic version")
        XCTAssertFalse(FileManager.default.fileExists(atPath: binary.workDirectory.appendingPathComponent("data").path))
    }
}
