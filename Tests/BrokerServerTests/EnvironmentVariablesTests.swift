import BrokerCommands
import BrokerCore
import Foundation
import XCTest

/// A `BROKER_*` variable the broker does not know stops it, named, before anything is written:
/// a typo must not fall back to a default, and another program's variable must not be taken for
/// a setting (issue 11: HAProxy's `BROKER_KEYS_DIR` once became the broker's `keys_dir`).
final class EnvironmentVariablesTests: XCTestCase {
    var broker: BrokerBinary!

    override func setUpWithError() throws {
        broker = try BrokerBinary.make()
    }

    override func tearDown() {
        broker?.cleanUp()
    }

    func testServeRefusesAMisspeltVariableNamingItAndWritesNothing() throws {
        var environment = broker.environment
        environment["BROKER_ACESS_LIFETIME"] = "60"
        let result = try broker.runExpectingExit(["serve", "--port", "0"], environment: environment)
        XCTAssertFalse(result.stillRunning, "the broker started with BROKER_ACESS_LIFETIME set: \(result.stdout)")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("BROKER_ACESS_LIFETIME"), result.stderr)
        XCTAssertTrue(result.stderr.contains("did you mean BROKER_ACCESS_LIFETIME?"), result.stderr)
        for directory in ["data", "keys"] {
            XCTAssertFalse(
                FileManager.default.fileExists(atPath: broker.workDirectory.appendingPathComponent(directory).path),
                "\(directory) was created")
        }
    }

    func testCommandsThatLoadTheConfigurationRefuseItToo() throws {
        var environment = broker.environment
        environment["BROKER_KEYS_FOLDER"] = "/tmp/elsewhere"
        environment["BROKER_ALG"] = "RS256"
        for arguments in [["users", "list"], ["keys", "list"], ["maintenance", "prune"]] {
            let result = try broker.runExpectingExit(arguments, environment: environment)
            XCTAssertEqual(result.status, 1, "\(arguments): \(result.stdout)")
            XCTAssertTrue(result.stderr.contains("unknown variables BROKER_ALG"), "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("BROKER_KEYS_FOLDER"), "\(arguments): \(result.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: broker.workDirectory.appendingPathComponent("data").path))
    }

    func testEveryKeyAndTheProjectsToolVariablesStayAccepted() throws {
        // Every key's variable is known: a key added to the table is known in the environment.
        var everyKey = Dictionary(uniqueKeysWithValues: EnvironmentNames.settings.map { ($0, "x") })
        everyKey["BROKER_TEST_PYTHON"] = "/usr/bin/python3"
        everyKey["BROKER_TEST_CHROMEDRIVER"] = "/usr/bin/chromedriver"
        XCTAssertNoThrow(try EnvironmentNames.refuseUnknown(in: everyKey))
        for key in BrokerConfiguration.keys + BrokerConfiguration.structuredKeys {
            XCTAssertTrue(EnvironmentNames.settings.contains("BROKER_" + key.uppercased()), key)
        }
        // ... and still read, over the real binary, beside the test scripts' own variables.
        var environment = broker.environment
        environment["BROKER_TEST_PYTHON"] = "/usr/bin/python3"
        environment["BROKER_BINARY"] = "/usr/local/bin/broker"
        environment["BROKER_TEST_CHROMEDRIVER"] = "/usr/bin/chromedriver"
        environment["BROKER_ACCESS_LIFETIME"] = "600"
        let result = try broker.runExpectingExit(["users", "list"], environment: environment)
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    func testTheLoaderRefusesBeforeReadingAnything() async throws {
        do {
            _ = try await ConfigurationLoader(environment: ["BROKER_ACESS_LIFETIME": "60", "BROKER_PORT": "9000"])
                .load(file: nil, flags: [:])
            XCTFail("an unknown BROKER_ variable was accepted")
        } catch let error as ConfigurationError {
            XCTAssertTrue(error.description.contains("BROKER_ACESS_LIFETIME (did you mean BROKER_ACCESS_LIFETIME?)"), error.description)
            XCTAssertFalse(error.description.contains("BROKER_PORT"), error.description)
        }
        // Far from every known name: named, without a guess.
        XCTAssertThrowsError(try EnvironmentNames.refuseUnknown(in: ["BROKER_SOMETHING_ELSE_ENTIRELY": "1"])) { error in
            XCTAssertFalse("\(error)".contains("did you mean"), "\(error)")
            XCTAssertTrue("\(error)".contains("BROKER_SOMETHING_ELSE_ENTIRELY"), "\(error)")
        }
        // Other prefixes are none of the broker's business.
        XCTAssertNoThrow(try EnvironmentNames.refuseUnknown(in: ["GATEWAY_KEYS_DIR": "/etc/haproxy", "BROKERAGE": "x"]))
    }
}
