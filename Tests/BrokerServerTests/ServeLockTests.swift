import Foundation
import XCTest

/// One `broker serve` per data directory, with real processes: a second one is refused naming
/// the holder's pid, the CLI keeps working beside the server, and a server killed with SIGKILL
/// leaves no lock behind.
final class ServeLockTests: XCTestCase {
    var broker: BrokerBinary!

    override func setUpWithError() throws {
        broker = try BrokerBinary.make()
    }

    override func tearDown() {
        broker?.cleanUp()
    }

    func testASecondServeOnTheSameDataDirectoryIsRefusedNamingTheHolder() throws {
        let (first, _) = try broker.serve()
        defer { first.terminate(); first.waitUntilExit() }
        let second = try broker.runExpectingExit(["serve", "--port", "0"])
        XCTAssertFalse(second.stillRunning, "a second broker served the same data_dir: \(second.stdout)")
        XCTAssertEqual(second.status, 1)
        XCTAssertTrue(second.stderr.contains("already served by another broker (pid \(first.processIdentifier)"), second.stderr)
        XCTAssertFalse(second.stderr.contains("SQLiteStore was not closed"), second.stderr)
        XCTAssertTrue(first.isRunning, "the refused start must not disturb the running broker")
    }

    func testTheCommandLineKeepsWorkingBesideARunningServer() throws {
        let (server, _) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }
        var result = try broker.run(["users", "add", "alice", "--password-stdin"], stdin: "correct horse battery staple\n")
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try broker.run(["keys", "rotate", "--force"])
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try broker.run(["maintenance", "prune"])
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    func testAServerKilledWithSIGKILLLeavesNoStaleLock() throws {
        let (first, _) = try broker.serve()
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: broker.workDirectory.appendingPathComponent("data/serve.lock").path),
            "the lock file stays; only the lock goes")
        let (second, port) = try broker.serve()
        defer { second.terminate(); second.waitUntilExit() }
        XCTAssertGreaterThan(port, 0)
    }
}
