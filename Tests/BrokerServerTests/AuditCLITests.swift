import BrokerCore
import Foundation
import XCTest

/// `broker audit`, run as an operator runs it, against a prepared audit log.
final class AuditCLITests: XCTestCase {
    var broker: BrokerBinary!
    /// Three hours, thirty minutes and one minute ago: far enough apart for relative `--since`.
    let now = Date()
    var lines: [String] = []

    override func setUpWithError() throws {
        broker = try BrokerBinary.make()
        let events = [
            AuditEvent(
                time: now.addingTimeInterval(-3 * 3600), action: .loginPassword, outcome: .success, actor: "alice",
                organization: "org1", requestID: "r-1", clientIP: "192.0.2.1"),
            AuditEvent(
                time: now.addingTimeInterval(-30 * 60), action: .loginPassword, outcome: .failure, actor: "bob",
                organization: "org1", clientIP: "192.0.2.2", reason: "invalid_credentials"),
            AuditEvent(
                time: now.addingTimeInterval(-60), action: .membershipApprove, outcome: .success, actor: "alice",
                organization: "org2", target: "bob"),
        ]
        lines = events.map { String(decoding: $0.jsonLine.dropLast(), as: UTF8.self) }
        try write(lines.joined(separator: "\n") + "\n", to: broker.workDirectory.appendingPathComponent("data/audit.log"))
    }

    override func tearDown() {
        broker.cleanUp()
    }

    private func write(_ text: String, to file: URL) throws {
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: file)
    }

    /// Runs `broker audit` with `arguments`; asserts success and returns the lines printed.
    private func audit(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        let result = try broker.run(["audit"] + arguments)
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        return result.stdout.split(separator: "\n").map(String.init)
    }

    func testPrintsEveryLineUnchangedWithoutFilters() throws {
        XCTAssertEqual(try audit([]), lines)
    }

    func testFiltersByActorOrganizationActionAndLimit() throws {
        XCTAssertEqual(try audit(["--actor", "alice"]), [lines[0], lines[2]])
        XCTAssertEqual(try audit(["--org", "org1"]), [lines[0], lines[1]])
        XCTAssertEqual(try audit(["--action", "membership.approve"]), [lines[2]])
        XCTAssertEqual(try audit(["--actor", "alice", "--org", "org1"]), [lines[0]])
        XCTAssertEqual(try audit(["--actor", "nobody"]), [])
        XCTAssertEqual(try audit(["--limit", "2"]), [lines[1], lines[2]], "the most recent, oldest first")
        XCTAssertEqual(try audit(["--actor", "alice", "--limit", "1"]), [lines[2]])
    }

    func testSinceTakesAnAgeOrAnRFC3339Time() throws {
        XCTAssertEqual(try audit(["--since", "2h"]), [lines[1], lines[2]])
        XCTAssertEqual(try audit(["--since", "15m"]), [lines[2]])
        XCTAssertEqual(try audit(["--since", "1d"]), lines)
        XCTAssertEqual(try audit(["--since", "\(10 * 3600)s"]), lines)
        let halfAnHourAgo = AuditTimestamp.format(now.addingTimeInterval(-30 * 60))
        XCTAssertEqual(try audit(["--since", halfAnHourAgo]), [lines[1], lines[2]], "at or after")
        XCTAssertEqual(try audit(["--since", "2099-01-01T00:00:00Z"]), [])
    }

    func testABadSinceIsAClearErrorWithExitStatusOne() throws {
        for bad in ["yesterday", "2h30m", "-5m", "2026-11-29", "5w"] {
            let result = try broker.run(["audit", "--since=\(bad)"])
            XCTAssertEqual(result.status, 1, bad)
            XCTAssertEqual(result.stdout, "", bad)
            XCTAssertTrue(result.stderr.contains("--since"), result.stderr)
            XCTAssertTrue(result.stderr.contains("RFC 3339") && result.stderr.contains("7d"), result.stderr)
        }
    }

    func testATornLastLineIsSkippedAndCounted() throws {
        let handle = try FileHandle(forWritingTo: broker.workDirectory.appendingPathComponent("data/audit.log"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"time":"2026-11-29T12:00:00.000Z","requ"#.utf8))
        try handle.close()
        let result = try broker.run(["audit"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout.split(separator: "\n").map(String.init), lines)
        XCTAssertTrue(result.stderr.contains("skipped 1 line"), result.stderr)
    }

    func testReadsTheConfiguredAuditLogAndSaysWhenThereIsNone() throws {
        let elsewhere = broker.workDirectory.appendingPathComponent("elsewhere/broker-audit.jsonl")
        try write(lines[1] + "\n", to: elsewhere)
        var configured = try BrokerBinary.make(extraConfig: "audit_log: \"\(elsewhere.path)\"")
        defer { configured.cleanUp() }
        var result = try configured.run(["audit"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, lines[1] + "\n")

        configured.environment["BROKER_CONFIG"] = nil
        result = try configured.run(["audit", "--data-dir", broker.workDirectory.appendingPathComponent("nothing-here").path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("no audit log at"), result.stderr)
        XCTAssertTrue(result.stderr.contains("nothing-here/audit.log"), result.stderr)
    }
}
