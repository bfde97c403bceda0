import BrokerSync

/// Lets the transactions of one operation return at their commit and wait for the disk once, at
/// the end of the operation, while the operation goes on (signing a token, writing its audit
/// line, which has a sync of its own).
///
/// A store whose commits become durable after `COMMIT` returns (SQLite's group commit) hands its
/// wait to the scope of the current task (``deferWait(_:)``) instead of waiting; ``run(_:)``
/// waits for every handed wait before it returns or rethrows. So nothing the operation answers
/// is sent before what it committed is on disk, but the operation's two syncs (the database's
/// and the audit log's) overlap instead of following each other. Outside a scope, and once the
/// scope has settled (a task the operation left running commits later), a store waits itself.
///
/// ```swift
/// let bundle = try await DurabilityScope.run {
///     let grant = try await store.transaction { tx in … }   // returns at COMMIT
///     return try await sign(grant)                          // while the log syncs
/// }                                                         // the commit is on disk here
/// ```
public final class DurabilityScope: Sendable {
    @TaskLocal private static var current: DurabilityScope?

    private struct State {
        var waits: [@Sendable () async throws -> Void] = []
        var isSettled = false
    }

    private let state = Locked(State())

    private init() {}

    /// Runs `body` in a scope (in the enclosing one if there is one), then waits for every
    /// commit made in it to be durable. A failed wait is thrown even when `body` succeeded.
    public static func run<Result>(_ body: () async throws -> Result) async throws -> Result {
        if Self.current != nil { return try await body() }
        let scope = DurabilityScope()
        let outcome: Swift.Result<Result, any Error>
        do {
            outcome = .success(try await Self.$current.withValue(scope) { try await body() })
        } catch {
            outcome = .failure(error)
        }
        try await scope.settle()
        return try outcome.get()
    }

    /// Hands `wait` to the current task's scope; `false` when there is none (or it has settled):
    /// then the caller waits itself.
    public static func deferWait(_ wait: @escaping @Sendable () async throws -> Void) -> Bool {
        guard let scope = Self.current else { return false }
        return scope.state.withLock { state in
            guard !state.isSettled else { return false }
            state.waits.append(wait)
            return true
        }
    }

    private func settle() async throws {
        let waits = self.state.withLock { state in
            state.isSettled = true
            defer { state.waits = [] }
            return state.waits
        }
        for wait in waits { try await wait() }
    }
}
