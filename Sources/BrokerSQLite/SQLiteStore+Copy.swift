import BrokerCore
import Foundation
import SQLiteNIO

/// The SQLite side of `broker db copy` (``DatabaseCopy``): a source only.
extension SQLiteStore: CopySource {
    /// The schema version of the database file at `path`, read without migrating it (opening a
    /// store would): 0 for a file no broker has set up.
    public static func schemaVersion(ofDatabaseAt path: String) async throws -> Int {
        let path = URL(fileURLWithPath: path).standardizedFileURL.path
        let thread = DatabaseThread.start(name: "sqlite-inspect")
        let connection: DatabaseConnection
        do {
            connection = try await DatabaseConnection.open(.file(path: path), on: thread)
        } catch {
            await thread.shutDown()
            throw SQLiteErrors.storeError(error)
        }
        let version: Result<Int64, any Error>
        do {
            _ = try await connection.rows("PRAGMA busy_timeout = 5000")
            let hasHistory = try await !connection.rows(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).isEmpty
            version = .success(
                hasHistory
                    ? try await connection.rows("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations")
                        .first?.int64("version") ?? 0
                    : 0)
        } catch {
            version = .failure(SQLiteErrors.storeError(error))
        }
        await connection.close()
        await thread.shutDown()
        return Int(try version.get())
    }

    public func catalogue() async throws -> [String: Set<String>] {
        try await self.withExclusiveConnection { connection in
            var tables: [String: Set<String>] = [:]
            for row in try await connection.rows(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")
            {
                let table = try row.string("name")
                tables[table] = Set(
                    try await connection.rows("SELECT name FROM pragma_table_info(?)", [.text(table)])
                        .map { try $0.string("name") })
            }
            return tables
        }
    }

    /// One deferred read transaction: in WAL mode every statement in it sees the same snapshot,
    /// while a server in another process goes on writing.
    public func copySnapshot(of tables: [CopiedTable]) async throws -> StoreCopySnapshot {
        try await self.withExclusiveConnection { connection in
            _ = try await connection.rows("BEGIN")
            do {
                var copied: [CopiedRows] = []
                for table in tables {
                    // Names come from StoreCopySchema, never from input.
                    let columns = table.columns.map(\.name).joined(separator: ", ")
                    let rows = try await connection.rows("SELECT \(columns) FROM \(table.name) ORDER BY rowid")
                    copied.append(
                        CopiedRows(
                            table: table,
                            rows: try rows.map { row in try table.columns.map { try Self.copiedValue(row, $0, of: table) } }))
                }
                var secrets: [String: [UInt8]] = [:]
                for row in try await connection.rows("SELECT name, value FROM server_secrets") {
                    secrets[try row.string("name")] = try row.bytes("value")
                }
                let ring = try await connection.rows("SELECT version, document FROM key_ring WHERE id = 1").first.map {
                    StoredKeyRing(version: Int(try $0.int64("version")), document: try $0.bytes("document"))
                }
                // AUTOINCREMENT's memory of every id it gave, deleted rows included.
                var highWater: [String: Int64] = [:]
                for row in try await connection.rows("SELECT name, seq FROM sqlite_sequence") {
                    highWater[try row.string("name")] = try row.int64("seq")
                }
                _ = try await connection.rows("COMMIT")
                return StoreCopySnapshot(tables: copied, serverSecrets: secrets, keyRing: ring, identityHighWater: highWater)
            } catch {
                _ = try? await connection.rows("ROLLBACK")
                throw SQLiteErrors.storeError(error)
            }
        }
    }

    public func rowCounts(of tables: [String]) async throws -> [String: Int] {
        try await self.withExclusiveConnection { connection in
            var counts: [String: Int] = [:]
            for table in tables {
                counts[table] = Int(try await connection.rows("SELECT COUNT(*) AS count FROM \(table)").first?.int64("count") ?? 0)
            }
            return counts
        }
    }

    private static func copiedValue(_ row: DatabaseRow, _ column: CopiedColumn, of table: CopiedTable) throws -> CopiedValue {
        guard let value = row.column(column.name) else { throw StoreError.engine("result has no column \(column.name)") }
        let unexpected = StoreError.engine("unexpected value type in \(table.name).\(column.name)")
        switch (column.kind, value) {
        case (_, .null): return .null
        case (.integer, .integer(let number)): return .integer(Int64(number))
        case (.real, .float(let number)): return .real(number)
        case (.real, .integer(let number)): return .real(Double(number))
        case (.text, .text(let text)): return .text(text)
        case (.boolean, .integer(let flag)) where flag == 0 || flag == 1: return .boolean(flag == 1)
        case (.blob, .blob(let buffer)): return .blob(Array(buffer.readableBytesView))
        case (.stringList, .text(let json)):
            guard let list = try? JSONDecoder().decode([String].self, from: Data(json.utf8)) else {
                throw StoreError.engine("\(table.name).\(column.name) does not hold a JSON array of strings")
            }
            return .stringList(list)
        default: throw unexpected
        }
    }
}
