import BrokerCore
import BrokerCrypto
import BrokerSync
import Foundation
import Logging
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class AuditTrailTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-audit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private var logPath: String { directory.appendingPathComponent("audit.log").path }

    /// 2027-01-15T08:00:00.123456Z
    private static let instant = Date(timeIntervalSince1970: 1_800_000_000.123456)

    private static func event(
        _ action: AuditAction = .loginPassword, _ outcome: AuditOutcome = .success, at time: Date = instant,
        actor: String? = "alice", organization: String? = "org1", requestID: String? = nil
    ) -> AuditEvent {
        AuditEvent(time: time, action: action, outcome: outcome, actor: actor, organization: organization, requestID: requestID)
    }

    private func fileLines(_ path: String? = nil) throws -> [String] {
        let text = try String(contentsOfFile: path ?? logPath, encoding: .utf8)
        return text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    // MARK: - Line format

    func testLineHasTheDocumentedKeysInOrderWithNullsAndMillisecondUTCTime() throws {
        let event = AuditEvent(
            time: Self.instant, action: .loginPassword, outcome: .failure, actor: "alice", organization: "org1",
            requestID: "r-42", clientIP: "192.0.2.7", reason: "invalid_credentials")
        let line = String(decoding: event.jsonLine, as: UTF8.self)
        XCTAssertEqual(
            line,
            #"{"time":"2027-01-15T08:00:00.123Z","request_id":"r-42","actor":"alice","action":"login.password","#
                + #""org":"org1","session":null,"target":null,"outcome":"failure","client_ip":"192.0.2.7","reason":"invalid_credentials"}"#
                + "\n")

        let parsed = try JSONParser.parse(Array(event.jsonLine.dropLast()))
        XCTAssertEqual(parsed["target"], .null)
        XCTAssertEqual(parsed["time"]?.string, "2027-01-15T08:00:00.123Z")
        let keys = line.matches(of: /"([a-z_]+)":/).map { String($0.output.1) }
        XCTAssertEqual(
            keys, ["time", "request_id", "actor", "action", "org", "session", "target", "outcome", "client_ip", "reason"])
    }

    func testAbsentFieldsAreNullAndALineReadsBackAsTheSameEvent() throws {
        let sparse = AuditEvent(time: Self.instant, action: .keyRotate, outcome: .success)
        let parsed = try JSONParser.parse(Array(sparse.jsonLine.dropLast()))
        for key in ["request_id", "actor", "org", "session", "target", "client_ip", "reason"] {
            XCTAssertEqual(parsed[key], .null, key)
        }
        XCTAssertEqual(parsed.object?.count, 10)
        XCTAssertEqual(AuditEvent(jsonLine: sparse.jsonLine), sparse)

        let full = AuditEvent(
            time: Self.instant, action: .membershipApprove, outcome: .denied, actor: "admin", organization: "org1",
            target: "bob", requestID: "r-1", clientIP: "2001:db8::1", reason: "forbidden")
        XCTAssertEqual(AuditEvent(jsonLine: full.jsonLine), full)
        XCTAssertEqual(full.time, Date(timeIntervalSince1970: 1_800_000_000.123), "kept to the millisecond written")
    }

    func testTimestampsAreFixedWidthUTCAndRFC3339Parses() {
        XCTAssertEqual(AuditTimestamp.format(Date(timeIntervalSince1970: 0)), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(AuditTimestamp.format(Date(timeIntervalSince1970: -0.001)), "1969-12-31T23:59:59.999Z")
        XCTAssertEqual(AuditTimestamp.format(Date(timeIntervalSince1970: 951_782_400.5)), "2000-02-29T00:00:00.500Z")
        XCTAssertEqual(AuditTimestamp.parse("2000-02-29T00:00:00.5Z"), Date(timeIntervalSince1970: 951_782_400.5))
        // Formatting what was parsed gives the same text back, millisecond by millisecond.
        for millisecond in 0..<1000 {
            let text = "2026-11-29T12:00:00." + String(format: "%03d", millisecond) + "Z"
            XCTAssertEqual(AuditTimestamp.parse(text).map(AuditTimestamp.format), text)
        }
        XCTAssertEqual(
            AuditTimestamp.parse("2026-11-29T13:00:00+01:00"), AuditTimestamp.parse("2026-11-29T12:00:00Z"))
        XCTAssertEqual(
            AuditTimestamp.parse("2026-11-29t12:00:00.123456z"), AuditTimestamp.parse("2026-11-29T12:00:00.123Z"))
        for bad in ["", "2026-11-29", "2026-11-29T12:00:00", "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
            "2026-11-29T24:00:00Z", "2026-11-29T12:00:00.Z", "2026-11-29T12:00:00Z ", "26-11-29T12:00:00Z"]
        {
            XCTAssertNil(AuditTimestamp.parse(bad), bad)
        }
    }

    func testEveryActionNameIsDottedAndDistinct() {
        let names = AuditAction.all.map(\.rawValue)
        XCTAssertEqual(Set(names).count, names.count)
        XCTAssertEqual(names.count, 36)
        for name in names where name != "introspect" {
            XCTAssertNotNil(name.wholeMatch(of: /[a-z]+\.[a-z_]+/), name)
        }
    }

    // MARK: - No forged lines, no secrets

    func testAHostileUsernameStaysOnOneLine() async throws {
        let forged = #"mallory"# + "\n" + #"{"time":"2027-01-15T08:00:00.000Z","actor":"admin","action":"user.create"}"#
        let hostile = AuditEvent(
            time: Self.instant, action: .loginPassword, outcome: .failure,
            actor: forged + "\r\u{2028}\u{85}\u{202E}", reason: "tab\there")
        XCTAssertEqual(hostile.jsonLine.filter { $0 == UInt8(ascii: "\n") }.count, 1)
        XCTAssertEqual(hostile.jsonLine.last, UInt8(ascii: "\n"))
        XCTAssertFalse(hostile.actor!.unicodeScalars.contains { $0.properties.generalCategory == .control })
        XCTAssertEqual(hostile.reason, "tab\u{FFFD}here")

        let trail = AuditTrail.file(path: logPath, failureMode: .failClosed)
        try await trail.record(hostile)
        await trail.close()
        let lines = try fileLines()
        XCTAssertEqual(lines.count, 2, "one line and the final newline")
        XCTAssertEqual(lines.last, "")
        let read = AuditEvent(jsonLine: Array(lines[0].utf8))
        XCTAssertEqual(read, hostile)
        XCTAssertTrue(read?.actor?.hasPrefix("mallory\u{FFFD}{") ?? false)
    }

    func testLongFieldsAreCut() {
        let event = AuditEvent(time: Self.instant, action: .loginPassword, outcome: .failure, actor: String(repeating: "a", count: 10_000))
        XCTAssertEqual(event.actor?.count, AuditEvent.maximumFieldLength)
        XCTAssertEqual(event.actor?.last, "…")
    }

    func testATokenIsNamedByAHashPrefixNeverItself() {
        let token = "rt_4f0c9e1b7a2d4c6e8f00112233445566"
        let reference = AuditEvent.tokenReference(token)
        XCTAssertEqual(reference, "sha256:" + Digest.sha256Hex(token).prefix(16))
        XCTAssertNotNil(reference.wholeMatch(of: /sha256:[0-9a-f]{16}/))
        XCTAssertFalse(reference.contains(token))
        XCTAssertNotEqual(reference, AuditEvent.tokenReference(token + "x"))
    }

    // MARK: - The file sink

    func testConcurrentAppendsEachBecomeOneIntactLine() async throws {
        let trail = AuditTrail.file(path: logPath, failureMode: .failClosed)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<200 {
                group.addTask {
                    try await trail.record(
                        .tokenRefresh, .success, actor: "user\(index)", organization: "org1",
                        context: AuditContext(requestID: "r-\(index)", clientIP: "192.0.2.1"))
                }
            }
            try await group.waitForAll()
        }
        await trail.close()
        let lines = try fileLines().dropLast()
        XCTAssertEqual(lines.count, 200)
        let events = lines.compactMap { AuditEvent(jsonLine: Array($0.utf8)) }
        XCTAssertEqual(events.count, 200, "every line parses")
        XCTAssertEqual(Set(events.compactMap(\.requestID)), Set((0..<200).map { "r-\($0)" }))
        XCTAssertTrue(events.allSatisfy { $0.actor == "user" + $0.requestID!.dropFirst(2) })
    }

    func testTheFileIsOwnerOnlyAndAppendedToNeverTruncated() async throws {
        let nested = directory.appendingPathComponent("missing").appendingPathComponent("audit.log").path
        let first = AuditTrail.file(path: nested, failureMode: .failClosed)
        try await first.record(Self.event(.userCreate, actor: "admin"))
        await first.close()
        XCTAssertEqual(try permissionBits(nested), 0o600)
        XCTAssertEqual(try permissionBits(directory.appendingPathComponent("missing").path), 0o700)
        let before = try String(contentsOfFile: nested, encoding: .utf8)

        let second = AuditTrail.file(path: nested, failureMode: .failClosed)
        try await second.record(Self.event(.userDelete, actor: "admin"))
        await second.close()
        let after = try String(contentsOfFile: nested, encoding: .utf8)
        XCTAssertTrue(after.hasPrefix(before))
        XCTAssertEqual(try fileLines(nested).dropLast().compactMap { AuditEvent(jsonLine: Array($0.utf8))?.action }, [.userCreate, .userDelete])
    }

    func testAnExistingLogKeepsItsModeAndContent() async throws {
        try Data("# kept\n".utf8).write(to: URL(fileURLWithPath: logPath))
        XCTAssertEqual(chmod(logPath, 0o640), 0)
        let trail = AuditTrail.file(path: logPath, failureMode: .failClosed)
        try await trail.record(Self.event())
        await trail.close()
        XCTAssertEqual(try permissionBits(logPath), 0o640)
        XCTAssertEqual(try fileLines().first, "# kept")
        XCTAssertEqual(try fileLines().count, 3)
    }

    func testAfterATornLastLineTheNextEventStartsANewLine() async throws {
        let whole = String(decoding: Self.event(actor: "bob").jsonLine, as: UTF8.self)
        try Data((whole + #"{"time":"2027-01-15T08:0"#).utf8).write(to: URL(fileURLWithPath: logPath))
        let trail = AuditTrail.file(path: logPath, failureMode: .failClosed)
        try await trail.record(Self.event(actor: "carol"))
        await trail.close()

        let lines = try fileLines()
        XCTAssertEqual(lines.count, 4)
        XCTAssertEqual(lines[1], #"{"time":"2027-01-15T08:0"#)
        let (records, summary) = try await AuditReader(path: logPath).lastMatches(AuditFilter(), limit: 10)
        XCTAssertEqual(records.map(\.event.actor), ["bob", "carol"])
        XCTAssertEqual(summary, AuditScanSummary(matched: 2, unparsable: 1))
    }

    func testAppendsAfterCloseAreRefused() async throws {
        let trail = AuditTrail.file(path: logPath, failureMode: .failClosed)
        await trail.close()
        await XCTAssertThrowsAuditUnavailable { try await trail.record(Self.event()) }
        await trail.close()  // twice is harmless
    }

    // MARK: - Failure modes

    func testFailClosedOnAFullDiskRefusesTheActionAndSaysWhyInTheServerLog() async throws {
        let logs = CapturedAuditLogs()
        let sink = FileAuditSink(path: "/dev/full")
        let trail = AuditTrail(sink: sink, failureMode: .failClosed, logger: logs.logger)
        do {
            try await trail.record(
                .loginPassword, .failure, actor: "hunter2-typed-as-username", organization: "org1",
                target: AuditEvent.tokenReference("secret-token"), context: AuditContext(requestID: "r-7"))
            XCTFail("expected audit_unavailable")
        } catch let error as BrokerError {
            XCTAssertEqual(error.code, .auditUnavailable)
            XCTAssertEqual(error.detail, "the audit log cannot be written; the action was refused")
        }
        await trail.close()

        let lines = logs.lines
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines[0].hasPrefix("error "), lines[0])
        XCTAssertTrue(lines[0].contains("login.password"), lines[0])
        XCTAssertTrue(lines[0].contains("r-7"), lines[0])
        XCTAssertTrue(lines[0].contains("/dev/full"), lines[0])
        XCTAssertTrue(lines[0].contains("errno \(ENOSPC)"), lines[0])
        XCTAssertFalse(lines[0].contains("hunter2"), lines[0])
        XCTAssertFalse(lines[0].contains("sha256:"), lines[0])
    }

    func testFailOpenOnAFullDiskCarriesOnWithOneErrorLine() async throws {
        let logs = CapturedAuditLogs()
        let trail = AuditTrail(sink: FileAuditSink(path: "/dev/full"), failureMode: .failOpen, logger: logs.logger)
        try await trail.record(.tokenRefresh, .success, actor: "hunter2-typed-as-username", organization: "org1")
        await trail.close()

        let lines = logs.lines
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines[0].hasPrefix("error "), lines[0])
        XCTAssertTrue(lines[0].contains("token.refresh"), lines[0])
        XCTAssertTrue(lines[0].contains("No space left on device"), lines[0])
        XCTAssertFalse(lines[0].contains("hunter2"), lines[0])
    }

    func testAFileThatCannotBeOpenedRecoversOnceItCan() async throws {
        // A regular file where the log's directory should be: open fails with ENOTDIR, even as root.
        let blocker = directory.appendingPathComponent("blocker")
        try Data("not a directory".utf8).write(to: blocker)
        let path = blocker.appendingPathComponent("audit.log").path
        let trail = AuditTrail.file(path: path, failureMode: .failClosed)
        await XCTAssertThrowsAuditUnavailable { try await trail.record(Self.event(actor: "lost")) }

        try FileManager.default.removeItem(at: blocker)
        try await trail.record(Self.event(actor: "kept"))
        await trail.close()
        XCTAssertEqual(try fileLines(path).dropLast().map { AuditEvent(jsonLine: Array($0.utf8))?.actor }, ["kept"])
    }

    func testAFailedWriteIsRetriedOnAFreshlyOpenedFile() async throws {
        // The log is a link to /dev/full until the "disk" is fixed by pointing it at a real file.
        let target = directory.appendingPathComponent("real.log").path
        try FileManager.default.createSymbolicLink(atPath: logPath, withDestinationPath: "/dev/full")
        let trail = AuditTrail.file(path: logPath, failureMode: .failClosed)
        await XCTAssertThrowsAuditUnavailable { try await trail.record(Self.event(actor: "lost")) }

        try FileManager.default.removeItem(atPath: logPath)
        try FileManager.default.createSymbolicLink(atPath: logPath, withDestinationPath: target)
        try await trail.record(Self.event(actor: "kept"))
        await trail.close()
        XCTAssertEqual(try fileLines(target).dropLast().map { AuditEvent(jsonLine: Array($0.utf8))?.actor }, ["kept"])
    }

    func testInMemoryAndDiscardingSinks() async throws {
        let sink = InMemoryAuditSink()
        let trail = AuditTrail(sink: sink, failureMode: .failClosed, clock: ManualWallClock(Self.instant))
        try await trail.record(.orgCreate, .success, actor: "admin", organization: "org3")
        XCTAssertEqual(sink.events, [AuditEvent(time: Self.instant, action: .orgCreate, outcome: .success, actor: "admin", organization: "org3")])
        sink.setFailing(true)
        await XCTAssertThrowsAuditUnavailable { try await trail.record(Self.event()) }
        sink.setFailing(false)
        try await trail.record(Self.event())
        XCTAssertEqual(sink.lines.count, 2)

        try await AuditTrail.discarding.record(Self.event())
    }

    func testBrokerServicesWritesTheConfiguredLogAndClosesItAtShutdown() async throws {
        let path = logPath
        let harness = try await CoreHarness.make { $0.auditLog = path }
        XCTAssertEqual(harness.services.audit.failureMode, .failClosed)
        try await harness.services.audit.record(.keyRotate, .success, actor: "operator", target: "kid-1")
        try await harness.shutdown()
        let events = try fileLines().dropLast().compactMap { AuditEvent(jsonLine: Array($0.utf8)) }
        XCTAssertEqual(events.map(\.action), [.keyRotate])
        XCTAssertEqual(events.first?.time, AuditTimestamp.parse(AuditTimestamp.format(harness.clock.now())))
    }

    // MARK: - Reading

    private func writeSampleLog() async throws {
        let clock = ManualWallClock(Self.instant)
        let trail = AuditTrail.file(path: logPath, failureMode: .failClosed, clock: clock)
        try await trail.record(.loginPassword, .success, actor: "alice", organization: "org1")
        clock.advance(by: 60)
        try await trail.record(.loginPassword, .failure, actor: "bob", organization: "org1", reason: "invalid_credentials")
        clock.advance(by: 60)
        try await trail.record(.membershipApprove, .success, actor: "alice", organization: "org2", target: "bob")
        clock.advance(by: 60)
        try await trail.record(.keyRotate, .success, actor: nil)
        await trail.close()
    }

    /// Asserts which actors' lines `filter` picks, in file order.
    private func expectActors(_ filter: AuditFilter, _ expected: [String?], line: UInt = #line) async throws {
        let found = Locked<[String?]>([])
        _ = try await AuditReader(path: logPath).scan(filter) { record in found.withLock { $0.append(record.event.actor) } }
        XCTAssertEqual(found.withLock { $0 }, expected, line: line)
    }

    func testReaderFiltersBySinceActorOrganizationAndAction() async throws {
        try await writeSampleLog()
        try await expectActors(AuditFilter(), ["alice", "bob", "alice", nil])
        try await expectActors(AuditFilter(since: Self.instant.addingTimeInterval(60)), ["bob", "alice", nil])
        try await expectActors(AuditFilter(since: Self.instant.addingTimeInterval(60.5)), ["alice", nil])
        try await expectActors(AuditFilter(actor: "alice"), ["alice", "alice"])
        try await expectActors(AuditFilter(organization: "org1"), ["alice", "bob"])
        try await expectActors(AuditFilter(action: .keyRotate), [nil])
        try await expectActors(AuditFilter(actor: "alice", organization: "org2"), ["alice"])
        // Exact matches only.
        try await expectActors(AuditFilter(actor: "ALICE"), [])
        try await expectActors(AuditFilter(action: AuditAction(rawValue: "login")), [])
    }

    func testReaderReturnsLinesUnchangedAndTheLastMatchesInOrder() async throws {
        try await writeSampleLog()
        let onDisk = try fileLines().dropLast()
        let (records, summary) = try await AuditReader(path: logPath).lastMatches(AuditFilter(), limit: 2)
        XCTAssertEqual(records.map { String(decoding: $0.line, as: UTF8.self) }, Array(onDisk.suffix(2)))
        XCTAssertEqual(summary, AuditScanSummary(matched: 4, unparsable: 0))
    }

    func testReaderSkipsAndCountsTornAndOverlongLines() async throws {
        try await writeSampleLog()
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(("not json\n\n" + String(repeating: "x", count: AuditReader.maximumLineLength + 10) + "\n").utf8))
        try handle.write(contentsOf: Self.event(actor: "dave").jsonLine)
        try handle.write(contentsOf: Data(#"{"time":"2027-01-15T08:10:00.000Z","request_id":null,"act"#.utf8))
        try handle.close()

        let summary = try await AuditReader(path: logPath).scan(AuditFilter(actor: "dave")) { _ in }
        XCTAssertEqual(summary, AuditScanSummary(matched: 1, unparsable: 3))
    }

    func testReadingAMissingLogSaysSo() async throws {
        do {
            _ = try await AuditReader(path: logPath).scan(AuditFilter()) { _ in }
            XCTFail("expected an error")
        } catch let error as AuditFileError {
            XCTAssertEqual(error.errno, ENOENT)
            XCTAssertTrue(error.description.contains(logPath))
        }
    }

    func testSinceAcceptsRFC3339AndAges() {
        let now = Self.instant
        XCTAssertEqual(AuditFilter.since("90s", now: now), now.addingTimeInterval(-90))
        XCTAssertEqual(AuditFilter.since("15m", now: now), now.addingTimeInterval(-900))
        XCTAssertEqual(AuditFilter.since("2h", now: now), now.addingTimeInterval(-7200))
        XCTAssertEqual(AuditFilter.since("7d", now: now), now.addingTimeInterval(-7 * 86_400))
        XCTAssertEqual(AuditFilter.since("2026-11-29T12:00:00Z", now: now), AuditTimestamp.parse("2026-11-29T12:00:00.000Z"))
        for bad in ["", "5", "m", "-5m", "5w", "1.5h", "2 h", "yesterday", "99999999999999999999d"] {
            XCTAssertNil(AuditFilter.since(bad, now: now), bad)
        }
    }

    // MARK: - Helpers

    private func permissionBits(_ path: String) throws -> mode_t {
        var info = stat()
        guard stat(path, &info) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return info.st_mode & 0o777
    }
}

/// Asserts that `body` throws `audit_unavailable`.
private func XCTAssertThrowsAuditUnavailable(
    file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> Void
) async {
    await XCTAssertBrokerError(.auditUnavailable, file: file, line: line, body)
}

/// The log lines a logger wrote, as "<level> <message> <metadata>".
private final class CapturedAuditLogs: Sendable {
    private let captured = Locked<[String]>([])

    var lines: [String] { captured.withLock { $0 } }

    var logger: Logger {
        var logger = Logger(label: "test.audit") { _ in Handler(sink: self) }
        logger.logLevel = .trace
        return logger
    }

    private struct Handler: LogHandler {
        let sink: CapturedAuditLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.captured.withLock { $0.append("\(event.level) \(event.message) \(merged)") }
        }
    }
}
