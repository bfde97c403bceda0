import ArgumentParser
import BrokerCore
import BrokerSQLite
import Foundation

/// `broker maintenance`: housekeeping an operator may run by hand or from cron (the server does
/// the same every `prune_interval`).
struct MaintenanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maintenance", abstract: "Housekeeping of the database (works while the server runs).",
        subcommands: [Prune.self])

    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete expired sessions, spent refresh tokens and expired revocations now.",
            discussion: """
                Deletes sessions past session_max_lifetime with their refresh tokens, the refresh \
                tokens of revoked sessions, expired unused refresh tokens and revocations of \
                access tokens that have expired, prune_batch_size rows per transaction. Used refresh \
                tokens of live sessions stay: reuse detection needs them. The audit log is not \
                touched. The database file keeps its size; SQLite reuses the freed pages.
                """)
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let environment = try await CommandEnvironment.open(options)
                let configuration = environment.configuration
                let pruner = StoragePruner(
                    store: environment.store, clock: SystemWallClock(), leeway: configuration.clockSkew,
                    batchSize: configuration.pruneBatchSize, logger: environment.logger)
                let removed: PrunedRows
                do {
                    removed = try await pruner.prune()
                } catch {
                    try? await environment.store.close()
                    throw error
                }
                try await environment.store.close()
                print("pruned \(removed)")
            }
        }
    }
}
