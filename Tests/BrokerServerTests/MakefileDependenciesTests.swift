import Foundation
import XCTest

/// `make run` installs only what building and running need; the test-only packages come with
/// `make test`; `build` depends on the install, so `make -j run` cannot build before it.
final class MakefileDependenciesTests: XCTestCase {
    static let testOnly: Set<String> = [
        "python3", "python3-venv", "haproxy", "nginx-light", "sqlite3", "postgresql", "systemd",
        "chromium", "chromium-driver", "fonts-dejavu-core",
    ]

    func testRunInstallsNoTestOnlyPackage() throws {
        let run = Set(try Self.run("scripts/install-deps.sh", ["--list", "run"]).split(separator: "\n").map(String.init))
        XCTAssertTrue(run.isSuperset(of: ["libssl-dev", "libcurl4-openssl-dev", "libargon2-dev"]), "\(run)")
        XCTAssertTrue(run.isDisjoint(with: Self.testOnly), "\(run)")
        let test = Set(try Self.run("scripts/install-deps.sh", ["--list", "test"]).split(separator: "\n").map(String.init))
        XCTAssertTrue(test.isSuperset(of: run.union(Self.testOnly)), "\(test)")
    }

    func testMakeRunInstallsTheRunPackagesBeforeBuildingAndMakeTestTheTestOnes() throws {
        let run = try Self.run("/usr/bin/make", ["-n", "run"]).split(separator: "\n").map(String.init)
        let install = try XCTUnwrap(run.firstIndex { $0.contains("install-deps.sh run") }, "\(run)")
        let build = try XCTUnwrap(run.firstIndex { $0.contains("swift build") }, "\(run)")
        XCTAssertLessThan(install, build)
        XCTAssertFalse(run.contains { $0.contains("install-deps.sh test") }, "\(run)")
        // Under -j the order holds only if `build` itself depends on the install.
        let makefile = try String(contentsOf: OpenAPIContract.repositoryRoot.appendingPathComponent("Makefile"), encoding: .utf8)
        XCTAssertTrue(makefile.contains("\nbuild: deps\n"), makefile)
        let test = try Self.run("/usr/bin/make", ["-n", "test"])
        XCTAssertTrue(test.contains("install-deps.sh test"), test)
    }

    /// The test command starts its own PostgreSQL and hands its URL to the tests, and stops it
    /// on every way out (CI has no server unless the command starts one).
    func testTheTestCommandStartsAndStopsAThrowawayPostgreSQL() throws {
        let script = try String(
            contentsOf: OpenAPIContract.repositoryRoot.appendingPathComponent("scripts/test.sh"), encoding: .utf8)
        XCTAssertTrue(script.contains("scripts/postgres-test-server.sh start"), script)
        XCTAssertTrue(script.contains("export BROKER_TEST_POSTGRES_URL"), script)
        XCTAssertTrue(script.contains("trap stop_postgres EXIT"), script)
    }

    /// The browser tests' tools: Selenium in the venv, pinned, and the Debian chromedriver named
    /// to the tests when it is there (PortalBrowserTests skip without it).
    func testTheTestCommandInstallsSeleniumAndNamesTheChromedriver() throws {
        let script = try String(
            contentsOf: OpenAPIContract.repositoryRoot.appendingPathComponent("scripts/test.sh"), encoding: .utf8)
        XCTAssertTrue(script.contains("selenium_version=4.51.0"), script)
        XCTAssertTrue(script.contains("export BROKER_TEST_CHROMEDRIVER=/usr/bin/chromedriver"), script)
    }

    /// Standard output of a command run at the repository root (asserting it succeeded).
    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let root = OpenAPIContract.repositoryRoot
        let process = Process()
        process.executableURL = executable.hasPrefix("/") ? URL(fileURLWithPath: executable) : root.appendingPathComponent(executable)
        process.arguments = arguments
        process.currentDirectoryURL = root
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "\(executable) \(arguments)")
        return text
    }
}
