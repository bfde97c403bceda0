import BrokerCrypto
import BrokerSync
import Foundation
import Logging

/// `log_format: json`: every log line is one JSON object, for log collectors:
/// `{"time":"2026-01-31T12:00:00.123Z","level":"info","label":"broker","message":"...","request_id":"..."}`.
/// Metadata members follow the fixed ones, each value flattened to a string; a metadata key that
/// would collide with a fixed member is written as `metadata.<key>`. Whatever a value contains
/// (quotes, newlines, control characters) is escaped, so one event is always exactly one line.
///
/// ```swift
/// LoggingSystem.bootstrap { label in JSONLogHandler.standardError(label: label) }
/// Logger(label: "broker").info("listening", metadata: ["port": "8080"])
/// ```
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public let label: String
    private let output: @Sendable ([UInt8]) -> Void

    static let fixedMembers: Set<String> = ["time", "level", "label", "message"]

    /// A handler whose lines are written with `output`, one call per line (newline included).
    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil, output: @escaping @Sendable ([UInt8]) -> Void) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.output = output
    }

    /// A handler writing to standard error, one `write` per line, lines never interleaved.
    public static func standardError(label: String, metadataProvider: Logger.MetadataProvider? = nil) -> JSONLogHandler {
        JSONLogHandler(label: label, metadataProvider: metadataProvider) { line in
            StandardErrorLines.write(line)
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty {
            merged.merge(provided) { _, new in new }
        }
        if let own = event.metadata, !own.isEmpty {
            merged.merge(own) { _, new in new }
        }
        output(Self.line(time: Date(), level: event.level, label: label, message: event.message.description, metadata: merged))
    }

    /// One log line, newline included.
    static func line(time: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> [UInt8] {
        var json = JSONWriter(capacity: 256 + message.utf8.count)
        json.beginObject()
        json.field("time", RFC3339.millisecondsUTC(time))
        json.field("level", level.rawValue)
        json.field("label", label)
        json.field("message", message)
        // Sorted, so that two lines of the same event kind read alike.
        for key in metadata.keys.sorted() {
            json.key(fixedMembers.contains(key) ? "metadata.\(key)" : key)
            json.string(Self.flatten(metadata[key]!))
        }
        json.endObject()
        var bytes = json.bytes
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array, .dictionary: value.description
        }
    }
}

/// Whole lines to standard error: one lock, so that lines of concurrent requests never mix.
enum StandardErrorLines {
    private static let lock = Locked(())

    static func write(_ line: [UInt8]) {
        lock.withLock { _ in
            line.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    offset += written
                }
            }
        }
    }
}

/// RFC 3339 timestamps, without a formatter object shared between threads.
enum RFC3339 {
    /// `2026-01-31T12:00:00.123Z`
    static func millisecondsUTC(_ date: Date) -> String {
        // Log times are never before 1970, so plain division splits seconds and milliseconds.
        let milliseconds = max(0, Int64((date.timeIntervalSince1970 * 1000).rounded(.down)))
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))"
            + "T\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2))"
            + ".\(pad(Int(milliseconds % 1000), 3))Z"
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
