#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOPosix

/// Which audit lines to show: every condition given must hold; `nil` means any.
///
/// ```swift
/// let filter = AuditFilter(since: try AuditFilter.since("2h", now: Date()), actor: "alice")
/// filter.matches(event)
/// ```
public struct AuditFilter: Sendable, Equatable {
    /// At or after this instant.
    public var since: Date?
    public var actor: String?
    public var organization: String?
    /// A session's id: every line about one session.
    public var session: String?
    public var action: AuditAction?

    public init(
        since: Date? = nil, actor: String? = nil, organization: String? = nil, session: String? = nil,
        action: AuditAction? = nil
    ) {
        self.since = since
        self.actor = actor
        self.organization = organization
        self.session = session
        self.action = action
    }

    public func matches(_ event: AuditEvent) -> Bool {
        if let since, event.time < AuditTimestamp.truncated(since) { return false }
        if let actor, event.actor != actor { return false }
        if let organization, event.organization != organization { return false }
        if let session, event.session != session { return false }
        if let action, event.action != action { return false }
        return true
    }

    /// Reads a `--since` value: an RFC 3339 date-time (`2026-11-29T12:00:00Z`) or an age before
    /// `now`, a whole number of seconds, minutes, hours or days (`90s`, `15m`, `2h`, `7d`).
    /// - Returns: nil if `text` is neither.
    public static func since(_ text: String, now: Date) -> Date? {
        if let date = AuditTimestamp.parse(text) { return date }
        guard let unit = text.last, text.count >= 2, text.dropLast().allSatisfy(\.isASCIIDigit),
            let count = Int(text.dropLast())
        else { return nil }
        let seconds: Double
        switch unit {
        case "s": seconds = 1
        case "m": seconds = 60
        case "h": seconds = 3600
        case "d": seconds = 86_400
        default: return nil
        }
        return now.addingTimeInterval(-Double(count) * seconds)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// One line of the log that matched, as it is in the file (without its newline), and what it says.
public struct AuditRecord: Sendable, Equatable {
    public let line: [UInt8]
    public let event: AuditEvent
}

/// What a scan went through.
public struct AuditScanSummary: Sendable, Equatable {
    /// Lines that matched the filter.
    public var matched = 0
    /// Lines that are not audit events: a torn last line after a crash, a line longer than
    /// ``AuditReader/maximumLineLength``, anything written by hand. Empty lines are not counted.
    public var unparsable = 0

    public init(matched: Int = 0, unparsable: Int = 0) {
        self.matched = matched
        self.unparsable = unparsable
    }
}

/// Reads an audit log line by line, however large, and picks the lines a filter matches.
///
/// The file is read in fixed-size chunks on a thread of NIO's blocking-I/O pool, never on the
/// cooperative pool; lines that do not parse are skipped and counted, so a torn last line or a
/// hand-made edit does not stop a search.
///
/// ```swift
/// let reader = AuditReader(path: configuration.auditLogPath)
/// let summary = try await reader.scan(AuditFilter(actor: "alice")) { record in
///     print(String(decoding: record.line, as: UTF8.self))
/// }
/// let (recent, _) = try await reader.lastMatches(AuditFilter(action: .loginPassword), limit: 20)
/// ```
public struct AuditReader: Sendable {
    public let path: String
    /// Longer lines are skipped (and counted unparsable) rather than held in memory: the writer
    /// caps fields, so only damage makes one.
    public static let maximumLineLength = 1 << 20

    public init(path: String) {
        self.path = path
    }

    /// Calls `body` with each matching line, in file order.
    ///
    /// `body` runs on the reading thread, one line at a time, before the next chunk is read.
    /// - Throws: ``AuditFileError`` if the file cannot be opened or read (`errno` ENOENT: no
    ///   event was ever written there).
    public func scan(
        _ filter: AuditFilter, _ body: @escaping @Sendable (AuditRecord) -> Void
    ) async throws -> AuditScanSummary {
        try await NIOThreadPool.singleton.runIfActive { [path] in
            try Self.scanBlocking(path: path, filter: filter, body)
        }
    }

    /// The last `limit` matching lines, oldest first: what `tail` would show of a filtered log.
    public func lastMatches(_ filter: AuditFilter, limit: Int) async throws -> (records: [AuditRecord], summary: AuditScanSummary) {
        precondition(limit > 0, "limit must be positive")
        return try await NIOThreadPool.singleton.runIfActive { [path] in
            var recent = RecentRecords(capacity: limit)
            let summary = try Self.scanBlocking(path: path, filter: filter) { recent.append($0) }
            return (recent.inOrder, summary)
        }
    }

    static func scanBlocking(
        path: String, filter: AuditFilter, _ body: (AuditRecord) -> Void
    ) throws(AuditFileError) -> AuditScanSummary {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .systemCall("open", path: path, errno: errno) }
        defer { _ = close(descriptor) }

        var summary = AuditScanSummary()
        func consider(_ line: ArraySlice<UInt8>) {
            guard !line.isEmpty else { return }
            guard let event = AuditEvent(jsonLine: line) else {
                summary.unparsable += 1
                return
            }
            guard filter.matches(event) else { return }
            summary.matched += 1
            body(AuditRecord(line: Array(line), event: event))
        }

        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var pending: [UInt8] = []
        var discardingLongLine = false
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw .systemCall("read", path: path, errno: code)
            }
            if count == 0 { break }
            var start = 0
            while start < count {
                guard let newline = chunk[start..<count].firstIndex(of: UInt8(ascii: "\n")) else {
                    if !discardingLongLine { pending.append(contentsOf: chunk[start..<count]) }
                    break
                }
                if discardingLongLine {
                    discardingLongLine = false
                } else if pending.isEmpty {
                    consider(chunk[start..<newline])
                } else {
                    pending.append(contentsOf: chunk[start..<newline])
                    consider(pending[...])
                    pending.removeAll(keepingCapacity: true)
                }
                start = newline + 1
            }
            if pending.count > maximumLineLength {
                summary.unparsable += 1
                pending.removeAll()
                discardingLongLine = true
            }
        }
        // No newline at the end: the last line was torn by a crash, or is still being written.
        if !discardingLongLine { consider(pending[...]) }
        return summary
    }
}

/// A ring of the last `capacity` records seen.
private struct RecentRecords {
    let capacity: Int
    private var storage: [AuditRecord] = []
    private var next = 0

    init(capacity: Int) {
        self.capacity = capacity
    }

    mutating func append(_ record: AuditRecord) {
        if storage.count < capacity {
            storage.append(record)
        } else {
            storage[next] = record
            next = (next + 1) % capacity
        }
    }

    var inOrder: [AuditRecord] { Array(storage[next...] + storage[..<next]) }
}
