import BrokerCore
import Foundation
import NIOCore
import SQLiteNIO
import VaporCSQLite

/// Where a ``DatabaseConnection`` keeps its data.
enum DatabaseStorage: Equatable, Sendable {
    /// A private in-memory database, gone with its connection.
    case memory
    /// The database file at this absolute path.
    case file(path: String)
}

/// One SQLite connection, used only on its ``DatabaseThread``, with its prepared statements kept
/// for reuse (a refresh grant runs the same few statements every time; preparing is a parse and
/// a query plan each).
///
/// Statements run synchronously: ``rowsHere(_:_:)`` on the thread (inside a transaction body
/// that ``SQLiteStore`` runs there), ``rows(_:_:)`` from anywhere (it moves to the thread when
/// needed). SQLite's own library is sqlite-nio's vendored one, so this connection and any other
/// in the process agree on file locks.
final class DatabaseConnection: @unchecked Sendable {
    /// Statements kept prepared: enough for every statement the store runs often, bounded
    /// because `IN (…)` lists and diagnostics make texts of their own.
    static let statementCacheSize = 128

    let thread: DatabaseThread
    // Touched only on `thread`.
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    private init(thread: DatabaseThread, handle: OpaquePointer) {
        self.thread = thread
        self.handle = handle
    }

    /// Opens (creating if missing) the database in `storage`, on `thread`.
    static func open(_ storage: DatabaseStorage, on thread: DatabaseThread) async throws -> DatabaseConnection {
        try await thread.run { try self.openHere(storage, on: thread) }
    }

    /// ``open(_:on:)`` when already on `thread`.
    static func openHere(_ storage: DatabaseStorage, on thread: DatabaseThread) throws -> DatabaseConnection {
        precondition(thread.isCurrent, "a database connection opened off its thread")
        _ = SQLiteLibrary.initialized
        let path: String
        switch storage {
        case .memory: path = ":memory:"
        case .file(let file): path = file
        }
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_CREATE | SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI | SQLITE_OPEN_EXRESCODE
        let code = sqlite_nio_sqlite3_open_v2(path, &handle, flags, nil)
        guard code == SQLITE_OK, let handle else {
            let failure = SQLiteFailure(code: code, message: handle.map(Self.message(of:)) ?? "cannot open the database")
            sqlite_nio_sqlite3_close(handle)
            throw failure
        }
        return DatabaseConnection(thread: thread, handle: handle)
    }

    var isClosed: Bool { self.handle == nil }

    /// Runs one statement and returns its rows, on the connection's thread.
    func rows(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [DatabaseRow] {
        try await self.thread.run { try self.rowsHere(sql, binds) }
    }

    /// Runs one statement and returns its rows. Call only on the connection's thread.
    func rowsHere(_ sql: String, _ binds: [SQLiteData] = []) throws -> [DatabaseRow] {
        precondition(self.thread.isCurrent, "a database connection used off its thread")
        guard let handle = self.handle else { throw StoreError.engine("store is closed") }
        let statement = try self.prepared(sql, on: handle)
        defer {
            sqlite_nio_sqlite3_reset(statement)
            sqlite_nio_sqlite3_clear_bindings(statement)
        }
        try self.bind(binds, to: statement, on: handle)
        let count = sqlite_nio_sqlite3_column_count(statement)
        var rows: [DatabaseRow] = []
        var names: DatabaseRow.Names?
        while true {
            switch sqlite_nio_sqlite3_step(statement) {
            case SQLITE_ROW:
                let columns = names ?? DatabaseRow.Names((0..<count).map { index in
                    sqlite_nio_sqlite3_column_name(statement, index).map { String(cString: $0) } ?? ""
                })
                names = columns
                rows.append(DatabaseRow(names: columns, values: try (0..<count).map { try Self.value(at: $0, of: statement) }))
            case SQLITE_DONE:
                return rows
            case let code:
                throw SQLiteFailure(code: code, message: Self.message(of: handle))
            }
        }
    }

    /// Finalizes the kept statements and closes the connection (SQLite rolls back whatever is
    /// open). Closing again does nothing.
    func close() async {
        _ = try? await self.thread.run { self.closeHere() }
    }

    private func closeHere() {
        for statement in self.statements.values { sqlite_nio_sqlite3_finalize(statement) }
        self.statements = [:]
        if let handle = self.handle {
            sqlite_nio_sqlite3_close_v2(handle)
            self.handle = nil
        }
    }

    // MARK: Statements

    private func prepared(_ sql: String, on handle: OpaquePointer) throws -> OpaquePointer {
        if let statement = self.statements[sql] { return statement }
        var statement: OpaquePointer?
        let code = sqlite_nio_sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard code == SQLITE_OK, let statement else {
            throw SQLiteFailure(code: code, message: Self.message(of: handle))
        }
        if self.statements.count >= Self.statementCacheSize {
            for kept in self.statements.values { sqlite_nio_sqlite3_finalize(kept) }
            self.statements = [:]
        }
        self.statements[sql] = statement
        return statement
    }

    private func bind(_ binds: [SQLiteData], to statement: OpaquePointer, on handle: OpaquePointer) throws {
        for (offset, value) in binds.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch value {
            case .blob(let buffer):
                code = buffer.withUnsafeReadableBytes {
                    sqlite_nio_sqlite3_bind_blob64(statement, index, $0.baseAddress, UInt64($0.count), transientDestructor)
                }
            case .float(let number):
                code = sqlite_nio_sqlite3_bind_double(statement, index, number)
            case .integer(let number):
                code = sqlite_nio_sqlite3_bind_int64(statement, index, Int64(number))
            case .null:
                code = sqlite_nio_sqlite3_bind_null(statement, index)
            case .text(let text):
                code = sqlite_nio_sqlite3_bind_text64(
                    statement, index, text, UInt64(text.utf8.count), transientDestructor, UInt8(SQLITE_UTF8))
            }
            guard code == SQLITE_OK else { throw SQLiteFailure(code: code, message: Self.message(of: handle)) }
        }
    }

    private static func value(at index: Int32, of statement: OpaquePointer) throws -> SQLiteData {
        switch sqlite_nio_sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER:
            return .integer(Int(sqlite_nio_sqlite3_column_int64(statement, index)))
        case SQLITE_FLOAT:
            return .float(sqlite_nio_sqlite3_column_double(statement, index))
        case SQLITE_TEXT:
            guard let text = sqlite_nio_sqlite3_column_text(statement, index) else {
                throw StoreError.engine("SQLite returned no text for a text column")
            }
            let length = Int(sqlite_nio_sqlite3_column_bytes(statement, index))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: length), as: UTF8.self))
        case SQLITE_BLOB:
            let length = Int(sqlite_nio_sqlite3_column_bytes(statement, index))
            var buffer = ByteBufferAllocator().buffer(capacity: length)
            if let bytes = sqlite_nio_sqlite3_column_blob(statement, index) {
                buffer.writeBytes(UnsafeRawBufferPointer(start: bytes, count: length))
            }
            return .blob(buffer)
        default:
            return .null
        }
    }

    private static func message(of handle: OpaquePointer) -> String {
        sqlite_nio_sqlite3_errmsg(handle).map { String(cString: $0) } ?? "unknown error"
    }

    deinit {
        // Runs wherever the last reference goes; the thread may be gone. SQLite allows closing
        // from another thread once no statement of the connection runs, which holds when no one
        // refers to it any more.
        for statement in self.statements.values { sqlite_nio_sqlite3_finalize(statement) }
        if let handle = self.handle { sqlite_nio_sqlite3_close_v2(handle) }
    }
}

/// SQLite's `SQLITE_TRANSIENT`: the value is copied before the bind call returns.
private let transientDestructor = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

private enum SQLiteLibrary {
    /// `sqlite3_initialize` once, before the first connection opens (lazily, thread-safely).
    static let initialized: Void = { _ = sqlite_nio_sqlite3_initialize() }()
}

/// One result row: values by column name, read through the typed accessors in SQLiteValues.swift.
struct DatabaseRow: Sendable {
    /// The column names of a statement's result, shared by its rows.
    final class Names: Sendable {
        let names: [String]
        init(_ names: [String]) { self.names = names }
    }

    let names: Names
    let values: [SQLiteData]
    /// Prepended to every column name looked up: one table's columns in a join (``table(_:)``).
    var prefix = ""

    /// The value of the first column named ``prefix`` + `name`; `nil` if there is none.
    func column(_ name: String) -> SQLiteData? {
        let name = self.prefix + name
        return self.names.names.firstIndex(of: name).map { self.values[$0] }
    }

    /// The columns of the row named `prefix` + name (see `SQLiteTransaction.aliased(_:of:)`),
    /// read by their names without it, so that one table's decoder reads its columns in a join
    /// whose tables share column names.
    func table(_ prefix: String) -> DatabaseRow {
        DatabaseRow(names: self.names, values: self.values, prefix: prefix)
    }
}

/// A failure SQLite reported, with its extended result code. SQLite's messages name tables,
/// columns and constraints, never bound values.
struct SQLiteFailure: Error, CustomStringConvertible {
    /// `SQLITE_CONSTRAINT_UNIQUE`, `SQLITE_CONSTRAINT_PRIMARYKEY`, `SQLITE_CONSTRAINT_FOREIGNKEY`.
    private static let uniqueConstraint: Int32 = 2067
    private static let primaryKeyConstraint: Int32 = 1555
    private static let foreignKeyConstraint: Int32 = 787

    let code: Int32
    let message: String

    /// A UNIQUE or PRIMARY KEY constraint failed.
    var isUniquenessViolation: Bool { self.code == Self.uniqueConstraint || self.code == Self.primaryKeyConstraint }

    /// A FOREIGN KEY constraint failed: a referenced row does not exist.
    var isForeignKeyViolation: Bool { self.code == Self.foreignKeyConstraint }

    /// `ROLLBACK` found no transaction: SQLite had already rolled it back (after some I/O, disk
    /// full or out-of-memory errors it does so by itself).
    var isNoActiveTransaction: Bool { self.message.contains("no transaction is active") }

    var description: String {
        let name = sqlite_nio_sqlite3_errstr(self.code).map { String(cString: $0) } ?? "error \(self.code)"
        return "\(name): \(self.message)"
    }
}
