import BrokerCore
import Foundation
import NIOCore
import SQLiteNIO

// How domain values are stored:
// - Dates: REAL, seconds since 1970-01-01T00:00:00Z (sub-microsecond precision for present-day
//   dates; readable with `datetime(col, 'unixepoch', 'subsec')`).
// - Booleans: INTEGER 0 or 1.
// - Byte strings: BLOB.
// - Lists of strings (`amr`): TEXT holding a JSON array.

extension SQLiteData {
    static func date(_ date: Date) -> SQLiteData {
        .float(date.timeIntervalSince1970)
    }

    static func date(_ date: Date?) -> SQLiteData {
        date.map { .float($0.timeIntervalSince1970) } ?? .null
    }

    static func bool(_ value: Bool) -> SQLiteData {
        .integer(value ? 1 : 0)
    }

    static func id(_ value: Int64) -> SQLiteData {
        .integer(SQLiteInt64(value))
    }

    static func nullableText(_ value: String?) -> SQLiteData {
        value.map { .text($0) } ?? .null
    }

    static func bytes(_ value: [UInt8]) -> SQLiteData {
        .blob(ByteBuffer(bytes: value))
    }

    static func stringList(_ values: [String]) throws -> SQLiteData {
        do {
            let json = try JSONEncoder().encode(values)
            return .text(String(decoding: json, as: UTF8.self))
        } catch {
            throw StoreError.engine("cannot encode a list of strings as JSON")
        }
    }
}

/// Typed access to the columns of a result row. A missing column or a value of the wrong type is
/// an engine failure (the schema and the code disagree); the message names the column, never
/// the value.
extension DatabaseRow {
    private func value(_ column: String) throws -> SQLiteData {
        guard let value = self.column(column) else {
            throw StoreError.engine("result has no column \(column)")
        }
        return value
    }

    private func unexpected(_ column: String) -> StoreError {
        StoreError.engine("unexpected value type in column \(column)")
    }

    func int64(_ column: String) throws -> Int64 {
        guard case .integer(let value) = try self.value(column) else { throw self.unexpected(column) }
        return Int64(value)
    }

    func optionalInt64(_ column: String) throws -> Int64? {
        switch try self.value(column) {
        case .null: return nil
        case .integer(let value): return Int64(value)
        default: throw self.unexpected(column)
        }
    }

    func string(_ column: String) throws -> String {
        guard case .text(let value) = try self.value(column) else { throw self.unexpected(column) }
        return value
    }

    func optionalString(_ column: String) throws -> String? {
        switch try self.value(column) {
        case .null: return nil
        case .text(let value): return value
        default: throw self.unexpected(column)
        }
    }

    func bool(_ column: String) throws -> Bool {
        switch try self.value(column) {
        case .integer(0): return false
        case .integer(1): return true
        default: throw self.unexpected(column)
        }
    }

    func date(_ column: String) throws -> Date {
        switch try self.value(column) {
        case .float(let seconds): return Date(timeIntervalSince1970: seconds)
        case .integer(let seconds): return Date(timeIntervalSince1970: Double(seconds))
        default: throw self.unexpected(column)
        }
    }

    func optionalDate(_ column: String) throws -> Date? {
        if case .null = try self.value(column) { return nil }
        return try self.date(column)
    }

    func bytes(_ column: String) throws -> [UInt8] {
        guard case .blob(let buffer) = try self.value(column) else { throw self.unexpected(column) }
        return Array(buffer.readableBytesView)
    }

    func stringList(_ column: String) throws -> [String] {
        let text = try self.string(column)
        guard let list = try? JSONDecoder().decode([String].self, from: Data(text.utf8)) else {
            throw StoreError.engine("column \(column) does not hold a JSON array of strings")
        }
        return list
    }
}
