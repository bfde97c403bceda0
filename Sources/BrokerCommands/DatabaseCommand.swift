import ArgumentParser
import BrokerCore
import BrokerSQLite
import Foundation

/// `broker db`: the database itself, as opposed to what is stored in it.
struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db", abstract: "Operations on the database (work while the server runs).",
        subcommands: [Migrate.self, Backup.self, Copy.self])

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring the database's schema up to this broker's version.",
            discussion: """
                Applies every pending schema migration in one transaction (on PostgreSQL under an \
                advisory lock: replicas starting meanwhile wait for it) and prints the schema version. \
                broker serve applies pending migrations too when it starts; in a rolling upgrade of \
                replicas, run this once with the new binary first, so that no replica migrates while \
                others serve. A database newer than this broker is refused, here and by serve.
                """)
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let environment = try await CommandEnvironment.open(options)
                do {
                    guard let store = environment.store as? any SchemaVersioned else {
                        throw ConfigurationError("this store has no schema versions")
                    }
                    let version = try await store.schemaVersion()
                    try await environment.store.close()
                    print("the database schema is at version \(version), the latest this broker knows "
                        + "(\(type(of: store).latestSchemaVersion))")
                } catch {
                    try? await environment.store.close()
                    throw error
                }
            }
        }
    }

    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a consistent copy of the SQLite database to a new file.",
            discussion: """
                Uses SQLite's VACUUM INTO: the copy is one snapshot of every committed transaction, \
                taken while broker serve keeps answering. FILE is created with mode 0600 (it holds \
                password hashes and server secrets) and must not exist: a backup never overwrites. \
                The copy is a complete database: to restore, stop the server and put it in place \
                of <data_dir>/broker.sqlite3 (removing broker.sqlite3-wal and -shm).
                """)
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The new file to write the copy to.") var file: String

        func run() async throws {
            try await reportingErrors {
                let configuration = try await options.configuration(extraFlags: [:])
                guard configuration.databaseURL.isEmpty else {
                    throw ConfigurationError(
                        "broker db backup copies the SQLite database, and database_url names a PostgreSQL one: "
                            + "back it up with PostgreSQL's own tools (pg_dump, or the base backups and WAL archive "
                            + "of your replication), see docs/postgresql.md")
                }
                // Opening a store creates it: a mistyped data_dir would back up a new, empty one.
                let databasePath = configuration.databasePath
                guard FileManager.default.fileExists(atPath: databasePath) else {
                    throw ConfigurationError("no database at \(databasePath): check data_dir (--data-dir, --config)")
                }
                let environment = try await CommandEnvironment.open(options)
                do {
                    guard let store = environment.store as? SQLiteStore else {
                        throw ConfigurationError("broker db backup needs the SQLite store")
                    }
                    try await store.backUp(to: file)
                } catch {
                    try? await environment.store.close()
                    throw error
                }
                try await environment.store.close()
                print("backup written to \(URL(fileURLWithPath: file).standardizedFileURL.path)")
            }
        }
    }
}
