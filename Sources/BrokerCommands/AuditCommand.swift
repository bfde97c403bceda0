import ArgumentParser
import BrokerCore
import Foundation

/// `broker audit`: prints the audit log's lines that match, unchanged, one JSON object a line.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Print audit log lines (JSON, one per line), optionally filtered.",
        discussion: """
            Reads the log named by audit_log (default: <data_dir>/audit.log). Filters combine: \
            a line is printed when it matches all of them. Lines that are not audit events (a torn \
            last line after a crash) are skipped and counted on standard error.
            """)

    @OptionGroup var options: GlobalOptions
    @Option(help: "Only events at or after this time: RFC 3339 (2026-11-29T12:00:00Z) or an age (90s, 15m, 2h, 7d).")
    var since: String?
    @Option(help: "Only events by this actor (exact).") var actor: String?
    @Option(help: "Only events in this organization (exact).") var org: String?
    @Option(help: "Only events about this session (its id, exact).") var session: String?
    @Option(help: "Only this action (exact), e.g. login.password.") var action: String?
    @Option(help: "Only the last N matching events.") var limit: Int?

    func run() async throws {
        try await reportingErrors {
            var filter = AuditFilter(
                actor: actor, organization: org, session: session, action: action.map(AuditAction.init(rawValue:)))
            if let since {
                guard let instant = AuditFilter.since(since, now: Date()) else {
                    throw ValidationError(
                        "--since \(since.debugDescription) is neither an RFC 3339 time (2026-11-29T12:00:00Z) "
                            + "nor an age such as 90s, 15m, 2h or 7d")
                }
                filter.since = instant
            }
            if let limit, limit <= 0 { throw ValidationError("--limit must be a positive number, not \(limit)") }

            let configuration = try await options.configuration()
            LoggingBootstrap.run(configuration)
            let reader = AuditReader(path: configuration.auditLogPath)
            let summary: AuditScanSummary
            do {
                if let limit {
                    let found = try await reader.lastMatches(filter, limit: limit)
                    for record in found.records { print(String(decoding: record.line, as: UTF8.self)) }
                    summary = found.summary
                } else {
                    summary = try await reader.scan(filter) { print(String(decoding: $0.line, as: UTF8.self)) }
                }
            } catch let error as AuditFileError where error.errno == ENOENT {
                throw ValidationError(
                    "no audit log at \(configuration.auditLogPath): nothing was recorded there yet, or audit_log "
                        + "points elsewhere (check --config and --data-dir)")
            }
            if summary.unparsable > 0 {
                FileHandle.standardError.write(Data(
                    "note: skipped \(summary.unparsable) line(s) that are not audit events (a torn last line after a crash?)\n".utf8))
            }
        }
    }
}
