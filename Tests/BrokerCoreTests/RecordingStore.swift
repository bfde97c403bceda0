import BrokerCore
import BrokerSync
import Foundation

/// A store that notes every call made to it before passing it on, so that a test can tell
/// whether (and how often) the services touched the store.
final class RecordingStore: Store {
    let base: any Store
    private let recorded = Locked<[String]>([])

    init(_ base: any Store) {
        self.base = base
    }

    /// The calls so far, in order: `transaction`, `read`, `accountSnapshot`, `close`.
    var calls: [String] { recorded.withLock { $0 } }

    func transaction<T: Sendable>(_ body: @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        recorded.withLock { $0.append("transaction") }
        return try await base.transaction(body)
    }

    func read<T: Sendable>(_ body: @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        recorded.withLock { $0.append("read") }
        return try await base.read(body)
    }

    func accountSnapshot(githubID: Int64, login: String, organizations names: [String]) async throws -> AccountSnapshot {
        recorded.withLock { $0.append("accountSnapshot") }
        return try await base.accountSnapshot(githubID: githubID, login: login, organizations: names)
    }

    var isSharedByReplicas: Bool { base.isSharedByReplicas }

    func close() async throws {
        recorded.withLock { $0.append("close") }
        try await base.close()
    }
}
