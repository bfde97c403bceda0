import Foundation
import XCTest

/// The "First steps" of `broker serve`'s banner: printed for a store without accounts only, and
/// its commands, run as printed, create the first admin.
final class FirstStepsTests: XCTestCase {
    var broker: BrokerBinary!

    override func setUpWithError() throws {
        broker = try BrokerBinary.make()
    }

    override func tearDown() {
        broker?.cleanUp()
    }

    func testAnEmptyStoreGetsFirstStepsWhoseScriptedCommandCreatesTheFirstAdmin() throws {
        let (server, _, banner) = try broker.serveCapturingBanner()
        defer { server.terminate(); server.waitUntilExit() }
        XCTAssertTrue(banner.contains("First steps"), banner)
        let config = try XCTUnwrap(broker.environment["BROKER_CONFIG"])
        XCTAssertTrue(banner.contains(" users add admin --admin --config \(config)\n"), banner)
        let scripted = try XCTUnwrap(
            banner.split(separator: "\n").first { $0.contains("--password-stdin") }, banner
        ).trimmingCharacters(in: .whitespaces)
        XCTAssertTrue(scripted.hasPrefix(#"printf '%s\n' "$ADMIN_PASSWORD" | "#), scripted)

        // Run exactly as printed, from a shell, beside the running server.
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", scripted]
        shell.environment = broker.environment.merging(["ADMIN_PASSWORD": "first admin passphrase"]) { $1 }
        shell.currentDirectoryURL = FileManager.default.temporaryDirectory
        try shell.run()
        shell.waitUntilExit()
        XCTAssertEqual(shell.terminationStatus, 0)
        let listed = try broker.run(["users", "list"])
        let columns = listed.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        let admin = try XCTUnwrap(columns.first { $0.count > 3 && $0[1] == "admin" }, listed.stdout)
        XCTAssertEqual(admin[3], "admin", "a global admin: \(listed.stdout)")
        XCTAssertEqual(admin[4], "argon2id", listed.stdout)
    }

    /// A data directory set by the environment is repeated as an option: the terminal the
    /// operator types the commands into may not export the variable.
    func testDirectoriesSetByTheEnvironmentAreRepeatedInTheCommands() throws {
        var environment = broker.environment
        let data = broker.workDirectory.appendingPathComponent("env-data").path
        let keys = broker.workDirectory.appendingPathComponent("env-keys").path
        environment["BROKER_DATA_DIR"] = data
        environment["BROKER_KEYS_DIR"] = keys
        let (server, _, banner) = try broker.serveCapturingBanner(environment: environment)
        defer { server.terminate(); server.waitUntilExit() }
        XCTAssertTrue(banner.contains(" users add alice --config \(environment["BROKER_CONFIG"]!) --data-dir \(data) --keys-dir \(keys)\n"), banner)
    }

    func testAStoreWithAccountsGetsNoFirstSteps() throws {
        XCTAssertEqual(
            try broker.run(["users", "add", "alice", "--password-stdin"], stdin: "correct horse battery staple\n").status, 0)
        let (server, _, banner) = try broker.serveCapturingBanner()
        defer { server.terminate(); server.waitUntilExit() }
        XCTAssertTrue(banner.contains("broker listening on"), banner)
        XCTAssertTrue(banner.contains("  portal http://127.0.0.1:8080/signin "), "the portal's address: \(banner)")
        XCTAssertFalse(banner.contains("First steps"), banner)
        XCTAssertFalse(banner.contains("users add"), banner)
    }

    func testTheBootstrapAdminCountsAsAnAccount() throws {
        var environment = broker.environment
        environment["BROKER_BOOTSTRAP_ADMIN"] = "root"
        environment["BROKER_BOOTSTRAP_ADMIN_PASSWORD"] = "first admin passphrase"
        let (server, _, banner) = try broker.serveCapturingBanner(environment: environment)
        defer { server.terminate(); server.waitUntilExit() }
        XCTAssertFalse(banner.contains("First steps"), banner)
    }
}
