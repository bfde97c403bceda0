import Foundation
import XCTest

/// `broker serve` reads the GitHub client secret at start, as it reads `database_password_file`:
/// a file it cannot use stops the start, naming the file; the secret itself appears in no log
/// line, even at `trace`. Over the real binary.
final class GitHubClientSecretStartupTests: XCTestCase {
    var broker: BrokerBinary!
    let secret = "st4rtup-s3cret-e1c9"

    override func setUpWithError() throws {
        broker = try BrokerBinary.make(extraConfig: "github_client_id: Iv1.0123abcd\nlog_level: trace")
    }

    override func tearDown() {
        broker?.cleanUp()
    }

    func testAnUnreadableOrEmptySecretFileStopsTheStart() throws {
        let empty = broker.workDirectory.appendingPathComponent("empty-secret")
        try "\n".write(to: empty, atomically: true, encoding: .utf8)
        let missing = broker.workDirectory.appendingPathComponent("missing-secret").path
        for (path, why) in [(missing, "cannot be read"), (empty.path, "is empty")] {
            var environment = broker.environment
            environment["BROKER_GITHUB_CLIENT_SECRET_FILE"] = path
            let result = try broker.runExpectingExit(["serve", "--port", "0"], environment: environment)
            XCTAssertFalse(result.stillRunning, result.stdout)
            XCTAssertEqual(result.status, 1)
            XCTAssertTrue(result.stderr.contains("error: github_client_secret_file \(path) \(why)"), result.stderr)
            XCTAssertFalse(result.stderr.contains(StartupErrorTests.unclosedStoreWarning), result.stderr)
        }
    }

    func testTheSecretIsNeverLogged() throws {
        for source in ["BROKER_GITHUB_CLIENT_SECRET", "BROKER_GITHUB_CLIENT_SECRET_FILE"] {
            var binary = broker!
            if source == "BROKER_GITHUB_CLIENT_SECRET" {
                binary.environment[source] = secret
            } else {
                let file = broker.workDirectory.appendingPathComponent("github-secret")
                try (secret + "\n").write(to: file, atomically: true, encoding: .utf8)
                binary.environment[source] = file.path
            }
            let log = broker.workDirectory.appendingPathComponent("stderr-\(source)")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let (process, port) = try binary.serve(standardError: try FileHandle(forWritingTo: log))
            XCTAssertGreaterThan(port, 0)
            process.terminate()
            process.waitUntilExit()
            let logged = try String(contentsOf: log, encoding: .utf8)
            XCTAssertFalse(logged.isEmpty, "the server logged its start and stop")
            XCTAssertFalse(logged.contains(secret), logged)
        }
    }
}
