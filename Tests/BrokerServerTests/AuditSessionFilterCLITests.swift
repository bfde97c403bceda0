import BrokerCore
import Foundation
import XCTest

/// `broker audit --session`: everything one session did, from its login to its revocation; and
/// lines written before the `session` key existed are still read.
final class AuditSessionFilterCLITests: XCTestCase {
    func testSessionFilterListsOneSessionsLinesAndOldLinesStillRead() throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        let now = Date()
        let events = [
            AuditEvent(
                time: now.addingTimeInterval(-60), action: .loginPassword, outcome: .success, actor: "alice",
                organization: "org1", session: "s-1", target: "jti:a", clientIP: "192.0.2.1"),
            AuditEvent(
                time: now.addingTimeInterval(-50), action: .loginPassword, outcome: .success, actor: "alice",
                organization: "org1", session: "s-2", target: "jti:b", clientIP: "192.0.2.1"),
            AuditEvent(
                time: now.addingTimeInterval(-40), action: .refreshReuseDetected, outcome: .denied, actor: "alice",
                organization: "org1", session: "s-1", target: "sha256:0123456789abcdef", clientIP: "198.51.100.9",
                reason: "refresh_token_reused"),
        ]
        var lines = events.map { String(decoding: $0.jsonLine.dropLast(), as: UTF8.self) }
        // As written before `session` existed: nine keys.
        let old = #"{"time":"\#(AuditTimestamp.format(now))","request_id":null,"actor":"cli","action":"user.create","#
            + #""org":null,"target":"bob","outcome":"success","client_ip":null,"reason":null}"#
        lines.append(old)
        let file = broker.workDirectory.appendingPathComponent("data/audit.log")
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: file)

        var result = try broker.run(["audit", "--session", "s-1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout.split(separator: "\n").map(String.init), [lines[0], lines[2]])
        result = try broker.run(["audit", "--actor", "cli"])
        XCTAssertEqual(result.stdout.split(separator: "\n").map(String.init), [old])
        XCTAssertEqual(result.stderr, "", "an old line is an event, not a skipped line")
    }
}
