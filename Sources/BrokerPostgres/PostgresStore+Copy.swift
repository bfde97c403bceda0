import BrokerCore
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// The PostgreSQL side of `broker db copy` (``DatabaseCopy``): the target, or a source (a move
/// from one database to another).
extension PostgresStore: CopyTarget {
    /// Rows per INSERT: well under PostgreSQL's 65,535 parameters for the widest table, and
    /// quick enough for the statement timeout.
    static let copyBatchSize = 1_000

    /// The schema version of the database of `settings`, read without migrating it (opening a
    /// store would): 0 for a database no broker has set up.
    public static func schemaVersion(of settings: Settings, logger: Logger) async throws -> Int {
        let client = PostgresClient(configuration: try clientConfiguration(settings), backgroundLogger: logger)
        let run = Task { await client.run() }
        defer { run.cancel() }
        return try await withConnection(of: client, timeout: settings.connectTimeout) { connection in
            do {
                let exists =
                    try await connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger)
                    .collect().first?.decode(Bool.self) ?? false
                guard exists else { return 0 }
                let version = try await connection.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", logger: logger)
                    .collect().first?.decode(Int64.self) ?? 0
                return Int(version)
            } catch {
                throw PostgresErrors.storeError(error)
            }
        }
    }

    public func catalogue() async throws -> [String: Set<String>] {
        let logger = self.logger
        return try await self.withConnection { connection in
            do {
                var tables: [String: Set<String>] = [:]
                let rows = try await connection.query(
                    """
                    SELECT c.table_name::text, c.column_name::text FROM information_schema.columns AS c
                    JOIN information_schema.tables AS t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
                    WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
                    """, logger: logger
                ).collect()
                for row in rows {
                    let (table, column) = try row.decode((String, String).self)
                    tables[table, default: []].insert(column)
                }
                return tables
            } catch {
                throw PostgresErrors.storeError(error)
            }
        }
    }

    /// One `REPEATABLE READ READ ONLY` transaction: every statement sees the same snapshot.
    public func copySnapshot(of tables: [CopiedTable]) async throws -> StoreCopySnapshot {
        let logger = self.logger
        return try await self.withConnection { connection in
            func rows(_ sql: String) async throws -> [PostgresRow] {
                try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect()
            }
            do {
                _ = try await rows("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                var copied: [CopiedRows] = []
                for table in tables {
                    // Names come from StoreCopySchema, never from input.
                    let columns = table.columns.map(\.name).joined(separator: ", ")
                    let read = try await rows("SELECT \(columns) FROM \(table.name)")
                    copied.append(
                        CopiedRows(table: table, rows: try read.map { try Self.copiedValues($0.makeRandomAccess(), of: table) }))
                }
                var secrets: [String: [UInt8]] = [:]
                for row in try await rows("SELECT name, value FROM server_secrets") {
                    let (name, value) = try row.decode((String, ByteBuffer).self)
                    secrets[name] = Array(value.readableBytesView)
                }
                let ring = try await rows("SELECT version, document FROM key_ring WHERE id = 1").first.map { row in
                    let (version, document) = try row.decode((Int64, ByteBuffer).self)
                    return StoredKeyRing(version: Int(version), document: Array(document.readableBytesView))
                }
                var highWater: [String: Int64] = [:]
                for table in tables {
                    guard let identity = table.identityColumn else { continue }
                    let last = try await rows(
                        "SELECT pg_sequence_last_value(pg_get_serial_sequence('\(table.name)', '\(identity)'))"
                    ).first?.decode(Int64?.self)
                    if let last { highWater[table.name] = last }
                }
                _ = try await rows("COMMIT")
                return StoreCopySnapshot(tables: copied, serverSecrets: secrets, keyRing: ring, identityHighWater: highWater)
            } catch {
                _ = try? await rows("ROLLBACK")
                throw PostgresErrors.storeError(error)
            }
        }
    }

    public func rowCounts(of tables: [String]) async throws -> [String: Int] {
        let logger = self.logger
        return try await self.withConnection { connection in
            do {
                var counts: [String: Int] = [:]
                for table in tables {
                    let count = try await connection.query(PostgresQuery(unsafeSQL: "SELECT COUNT(*) FROM \(table)"), logger: logger)
                        .collect().first?.decode(Int64.self) ?? 0
                    counts[table] = Int(count)
                }
                return counts
            } catch {
                throw PostgresErrors.storeError(error)
            }
        }
    }

    /// One `SERIALIZABLE` transaction that first finds every table empty: a replica or a second
    /// copy writing meanwhile makes one of them fail rather than mix.
    public func fillEmpty(with tables: [CopiedRows], identityHighWater: [String: Int64], keyRing: StoredKeyRing?) async throws {
        let logger = self.logger
        let everyTable = try await self.catalogue().keys.filter { $0 != "schema_migrations" }.sorted()
        try await self.withConnection { connection in
            func run(_ query: PostgresQuery) async throws -> [PostgresRow] {
                try await connection.query(query, logger: logger).collect()
            }
            do {
                _ = try await run("BEGIN ISOLATION LEVEL SERIALIZABLE")
                var occupied: [String] = []
                for table in everyTable {
                    let rows = try await run(PostgresQuery(unsafeSQL: "SELECT EXISTS (SELECT 1 FROM \(table))"))
                    if try rows.first?.decode(Bool.self) == true { occupied.append(table) }
                }
                guard occupied.isEmpty else {
                    throw StoreCopyRefusal(
                        "the target database is not empty (rows in \(occupied.joined(separator: ", "))): "
                            + "broker db copy writes only into a new, empty database; nothing was written")
                }
                for contents in tables {
                    for batch in stride(from: 0, to: contents.rows.count, by: Self.copyBatchSize) {
                        let rows = contents.rows[batch..<min(batch + Self.copyBatchSize, contents.rows.count)]
                        _ = try await run(try Self.insert(rows, into: contents.table))
                    }
                    if let identity = contents.table.identityColumn {
                        let table = contents.table.name
                        _ = try await run(
                            PostgresQuery(
                                unsafeSQL: """
                                    SELECT setval(pg_get_serial_sequence('\(table)', '\(identity)'),
                                        GREATEST(COALESCE((SELECT MAX(\(identity)) FROM \(table)), 0), \(identityHighWater[table] ?? 0)) + 1,
                                        false)
                                    """))
                    }
                }
                if let keyRing {
                    _ = try await run(
                        "INSERT INTO key_ring (id, version, document) VALUES (1, \(Int64(keyRing.version)), \(ByteBuffer(bytes: keyRing.document)))"
                    )
                }
                _ = try await run("COMMIT")
            } catch {
                _ = try? await run("ROLLBACK")
                if let refusal = error as? StoreCopyRefusal { throw refusal }
                if let error = error as? PSQLError, SQLState.isConflict(error.sqlState) {
                    throw StoreCopyRefusal(
                        "something else wrote to the target database during the copy (a broker serve, another copy?); "
                            + "nothing was written: stop it and copy into a new, empty database")
                }
                throw PostgresErrors.storeError(error)
            }
        }
    }

    private static func insert(_ rows: ArraySlice<[CopiedValue]>, into table: CopiedTable) throws -> PostgresQuery {
        var bindings = PostgresBindings(capacity: rows.count * table.columns.count)
        var tuples: [String] = []
        tuples.reserveCapacity(rows.count)
        var parameter = 0
        for row in rows {
            var placeholders: [String] = []
            for value in row {
                parameter += 1
                placeholders.append("$\(parameter)")
                switch value {
                case .null: bindings.appendNull()
                case .integer(let number): bindings.append(number)
                case .real(let number): bindings.append(number)
                case .text(let text): bindings.append(text)
                case .boolean(let flag): bindings.append(flag)
                case .blob(let bytes): bindings.append(ByteBuffer(bytes: bytes))
                case .stringList(let list): bindings.append(list)
                }
            }
            tuples.append("(" + placeholders.joined(separator: ", ") + ")")
        }
        let columns = table.columns.map(\.name).joined(separator: ", ")
        return PostgresQuery(
            unsafeSQL: "INSERT INTO \(table.name) (\(columns)) VALUES \(tuples.joined(separator: ", "))", binds: bindings)
    }

    private static func copiedValues(_ row: PostgresRandomAccessRow, of table: CopiedTable) throws -> [CopiedValue] {
        try table.columns.map { (column: CopiedColumn) throws -> CopiedValue in
            let cell = row[column.name]
            do {
                switch column.kind {
                case .integer: return try cell.decode(Int64?.self).map(CopiedValue.integer) ?? .null
                case .real: return try cell.decode(Double?.self).map(CopiedValue.real) ?? .null
                case .text: return try cell.decode(String?.self).map(CopiedValue.text) ?? .null
                case .boolean: return try cell.decode(Bool?.self).map(CopiedValue.boolean) ?? .null
                case .blob: return try cell.decode(ByteBuffer?.self).map { .blob(Array($0.readableBytesView)) } ?? .null
                case .stringList: return try cell.decode([String]?.self).map(CopiedValue.stringList) ?? .null
                }
            } catch {
                throw StoreError.engine("unexpected value type in \(table.name).\(column.name)")
            }
        }
    }
}
