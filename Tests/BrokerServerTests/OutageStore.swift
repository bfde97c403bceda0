import BrokerCore
import BrokerSync
import Foundation

/// Whether an ``OutageStore`` fails; shared with the test that switches it.
final class StoreOutage: Sendable {
    private let down = Locked(false)
    func begin() { down.withLock { $0 = true } }
    func end() { down.withLock { $0 = false } }
    var isDown: Bool { down.withLock { $0 } }
}

/// A store that can be taken down and brought back: while down, every call throws `failure` at
/// once — by default `StoreError.unavailable`, as a PostgreSQL store does when its database
/// cannot be reached.
final class OutageStore: Store {
    let base: any Store
    let outage: StoreOutage
    private let failure: StoreError

    init(
        _ base: any Store, outage: StoreOutage = StoreOutage(),
        failure: StoreError = .unavailable("connection refused (test outage)")
    ) {
        self.base = base
        self.outage = outage
        self.failure = failure
    }

    /// From now on every call fails (true) or passes through again (false).
    func setDown(_ isDown: Bool) {
        if isDown { outage.begin() } else { outage.end() }
    }

    private func reach() throws {
        if outage.isDown { throw failure }
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

    var isSharedByReplicas: Bool { base.isSharedByReplicas }

    func close() async throws {
        try await base.close()
    }
}
