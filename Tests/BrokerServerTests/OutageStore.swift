import BrokerCore
import BrokerSync
import Foundation

/// A store that can be taken down and brought back: while down, every call throws
/// `StoreError.unavailable` at once, as a PostgreSQL store does when its database cannot be
/// reached.
final class OutageStore: Store {
    let base: any Store
    private let down = Locked(false)

    init(_ base: any Store) {
        self.base = base
    }

    /// From now on every call fails (true) or passes through again (false).
    func setDown(_ isDown: Bool) {
        down.withLock { $0 = isDown }
    }

    private func reach() throws {
        if down.withLock({ $0 }) { throw StoreError.unavailable("connection refused (test outage)") }
    }

    func transaction<T: Sendable>(_ body: @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        try reach()
        return try await base.transaction(body)
    }

    func read<T: Sendable>(_ body: @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        try reach()
        return try await base.read(body)
    }

    func accountSnapshot(githubID: Int64, login: String, organizations names: [String]) async throws -> AccountSnapshot {
        try reach()
        return try await base.accountSnapshot(githubID: githubID, login: login, organizations: names)
    }

    func close() async throws {
        try await base.close()
    }
}
