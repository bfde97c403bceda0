import BrokerCore
import Foundation

/// A store that runs every transaction body twice, as an engine retrying a serialization
/// failure does: first inside a transaction it then aborts (so that run's writes are rolled
/// back), then for real. Whatever a body does outside the store happens twice.
final class RerunningStore: Store {
    let base: any Store

    init(_ base: any Store) {
        self.base = base
    }

    private struct Abort: Error {}

    func transaction<T: Sendable>(_ body: @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        do {
            _ = try await base.transaction { tx -> T in
                _ = try await body(tx)
                throw Abort()
            }
        } catch {
            // Rolled back, whether by the abort or by the body's own error: the retry decides.
        }
        return try await base.transaction(body)
    }

    func read<T: Sendable>(_ body: @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        _ = try? await base.read(body)
        return try await base.read(body)
    }

    func accountSnapshot(githubID: Int64, login: String, organizations names: [String]) async throws -> AccountSnapshot {
        try await base.accountSnapshot(githubID: githubID, login: login, organizations: names)
    }

    var isSharedByReplicas: Bool { base.isSharedByReplicas }

    func close() async throws {
        try await base.close()
    }
}
