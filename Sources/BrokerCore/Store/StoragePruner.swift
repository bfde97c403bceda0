import Foundation
import Logging

/// The instants before which stored rows can no longer matter (see
/// ``StoreTransaction/pruneStorage(_:limit:)``).
public struct PruneCutoffs: Sendable, Equatable {
    /// Sessions (refresh families) that expired before this are deleted with their refresh
    /// tokens. Until then every used refresh token of the session is kept: presenting one again
    /// is reuse, and revokes the session.
    public var sessionsExpiredBefore: Date
    /// Unused refresh tokens that expired before this are deleted: they can never be exchanged,
    /// and reuse detection looks only at used ones.
    public var unusedRefreshTokensExpiredBefore: Date
    /// Revoked access tokens (`jti`) whose expiry is before this are forgotten: the token is
    /// refused as expired anyway.
    public var revocationsExpiredBefore: Date

    public init(sessionsExpiredBefore: Date, unusedRefreshTokensExpiredBefore: Date, revocationsExpiredBefore: Date) {
        self.sessionsExpiredBefore = sessionsExpiredBefore
        self.unusedRefreshTokensExpiredBefore = unusedRefreshTokensExpiredBefore
        self.revocationsExpiredBefore = revocationsExpiredBefore
    }

    /// Everything that expired more than `leeway` seconds before `now` (the verifier accepts a
    /// token that long past its `exp`).
    public init(now: Date, leeway: Int) {
        let cutoff = now.addingTimeInterval(-TimeInterval(max(0, leeway)))
        self.init(sessionsExpiredBefore: cutoff, unusedRefreshTokensExpiredBefore: cutoff, revocationsExpiredBefore: cutoff)
    }
}

/// How many rows of each kind a prune deleted.
public struct PrunedRows: Sendable, Equatable, CustomStringConvertible {
    public var refreshTokens: Int
    public var sessions: Int
    public var revokedAccessTokens: Int
    /// Portal invitations past their expiry, used or not: a used one has done its work (the audit
    /// log keeps who used it), an unused one can no longer be.
    public var invitations: Int

    public init(refreshTokens: Int = 0, sessions: Int = 0, revokedAccessTokens: Int = 0, invitations: Int = 0) {
        self.refreshTokens = refreshTokens
        self.sessions = sessions
        self.revokedAccessTokens = revokedAccessTokens
        self.invitations = invitations
    }

    public var total: Int { refreshTokens + sessions + revokedAccessTokens + invitations }

    public static func + (lhs: PrunedRows, rhs: PrunedRows) -> PrunedRows {
        PrunedRows(
            refreshTokens: lhs.refreshTokens + rhs.refreshTokens, sessions: lhs.sessions + rhs.sessions,
            revokedAccessTokens: lhs.revokedAccessTokens + rhs.revokedAccessTokens, invitations: lhs.invitations + rhs.invitations)
    }

    public var description: String {
        "\(refreshTokens) refresh token(s), \(sessions) session(s), \(revokedAccessTokens) access token revocation(s), "
            + "\(invitations) invitation(s)"
    }
}

/// Deletes what can no longer matter from the store, so that it grows with the number of live
/// sessions, not with time: sessions past `session_max_lifetime` (with their refresh tokens),
/// the refresh tokens of revoked sessions, unused refresh tokens past their expiry, and
/// revocations of access tokens past theirs, portal invitations past theirs, and the throttle counters' times older than any
/// throttle window (``ThrottleCounting/longestWindow``). Used refresh tokens of a live session stay: reuse
/// detection needs them until the session expires. The audit log is never touched (see
/// docs/audit.md, "Rotating the log").
///
/// Each batch of at most `batchSize` rows is one transaction, so logins and refreshes wait for
/// one short batch at most, never for the whole prune.
///
/// ```swift
/// let pruner = StoragePruner(store: store, clock: SystemWallClock(), leeway: 30, logger: logger)
/// let removed = try await pruner.prune()
/// ```
public struct StoragePruner: Sendable {
    public static let defaultBatchSize = 500

    public let store: any Store
    public let clock: any WallClock
    /// Seconds a token is still accepted past its expiry (`clock_skew`).
    public let leeway: Int
    public let batchSize: Int
    public let logger: Logger

    public init(
        store: any Store, clock: any WallClock, leeway: Int, batchSize: Int = Self.defaultBatchSize, logger: Logger
    ) {
        precondition(batchSize > 0, "a prune batch must delete at least one row")
        self.store = store
        self.clock = clock
        self.leeway = leeway
        self.batchSize = batchSize
        self.logger = logger
    }

    /// Prunes until nothing prunable is left; returns what was deleted.
    @discardableResult
    public func prune() async throws -> PrunedRows {
        let cutoffs = PruneCutoffs(now: clock.now(), leeway: leeway)
        let limit = batchSize
        var removed = PrunedRows()
        while true {
            try Task.checkCancellation()
            let batch = try await store.transaction { tx in try await tx.pruneStorage(cutoffs, limit: limit) }
            removed = removed + batch
            BrokerMetrics.pruned(batch)
            if batch.total < limit { break }
            // Let waiting logins and refreshes in between two batches.
            await Task.yield()
        }
        let throttleTimes = try await pruneThrottleTimes(limit: limit)
        if throttleTimes > 0 {
            logger.info("pruned throttle counters", metadata: ["throttle_times": "\(throttleTimes)"])
        }
        if removed.total > 0 {
            logger.info("pruned storage", metadata: [
                "refresh_tokens": "\(removed.refreshTokens)", "sessions": "\(removed.sessions)",
                "revoked_access_tokens": "\(removed.revokedAccessTokens)", "invitations": "\(removed.invitations)",
            ])
        }
        return removed
    }

    /// Deletes the throttle counters' times older than any window (shared counting keeps them in
    /// the store; a counter that stopped counting would otherwise keep its last ones).
    private func pruneThrottleTimes(limit: Int) async throws -> Int {
        let cutoff = clock.now().addingTimeInterval(-TimeInterval(ThrottleCounting.longestWindow))
        var deleted = 0
        while true {
            try Task.checkCancellation()
            let batch = try await store.transaction { tx in
                try await tx.pruneThrottleTimes(counters: ThrottleCounter.allCases, before: cutoff, limit: limit)
            }
            deleted += batch
            if batch < limit { return deleted }
            await Task.yield()
        }
    }

    /// Runs ``prune()`` every `interval` until the task is cancelled; a failed round is logged
    /// and the next one tries again.
    public func run(interval: Duration) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                break
            }
            do {
                try await prune()
            } catch is CancellationError {
                break
            } catch {
                logger.error("storage pruning failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
