import BrokerCore
import BrokerSync
import Foundation

/// A store that runs one step of the test's right after its next transaction commits. A
/// password login reads the account (hash and versions) in one transaction, verifies the
/// password, and records its session in a later one: a step armed just before the login runs
/// while the login is between the two, as a password reset committing during verification
/// would — deterministically, without sleeping.
final class InterposingStore: Store {
    let base: any Store
    private let pending = Locked<(@Sendable () async throws -> Void)?>(nil)

    init(_ base: any Store) {
        self.base = base
    }

    /// Runs `step` once, after the next transaction (of anyone) commits and before that
    /// transaction's caller continues. Transactions of `step` itself pass straight through.
    func afterNextTransaction(_ step: @escaping @Sendable () async throws -> Void) {
        pending.withLock { $0 = step }
    }

    func transaction<T: Sendable>(_ body: @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        let result = try await base.transaction(body)
        let step = pending.withLock { pending in
            defer { pending = nil }
            return pending
        }
        try await step?()
        return result
    }

    func read<T: Sendable>(_ body: @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        try await base.read(body)
    }

    func accountSnapshot(githubID: Int64, login: String, organizations names: [String]) async throws -> AccountSnapshot {
        try await base.accountSnapshot(githubID: githubID, login: login, organizations: names)
    }

    var isSharedByReplicas: Bool { base.isSharedByReplicas }

    func close() async throws {
        try await base.close()
    }
}

/// What a step run by ``InterposingStore`` saw, for the test to check afterwards.
final class StepRecord<Value: Sendable>: Sendable {
    private let stored = Locked<Value?>(nil)

    func record(_ value: Value) { stored.withLock { $0 = value } }
    var value: Value? { stored.withLock { $0 } }
}
