import BrokerCore
import BrokerSQLite
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import XCTest

/// The health checks of load balancers and orchestrators, over real HTTP.
final class HealthChecksHTTPTests: XCTestCase {
    /// What the broker waits for SQLite's write lock (`busy_timeout`) before giving up: a check
    /// that queued behind a writer would answer no sooner than this.
    static let writeLockWait: Duration = .seconds(5)

    /// A CLI import holds SQLite's write lock for as long as it runs; `/healthz` reads, so it
    /// answers meanwhile instead of waiting for the lock and then calling the store unreachable.
    func testHealthzAnswersWhileAnotherConnectionHoldsTheWriteLock() async throws {
        let harness = try await ServerHarness.make()
        do {
            let writer = try await SQLiteStore.open(
                path: harness.services.configuration.databasePath, logger: Logger(label: "test.cli"))
            let lock = try await WriteLockHolder.hold(writer)
            do {
                try await harness.withClient { client in
                    let start = ContinuousClock.now
                    let (status, body) = try await client.getJSON("/healthz")
                    let elapsed = ContinuousClock.now - start
                    XCTAssertEqual(status, .ok)
                    XCTAssertEqual(body["status"] as? String, "ok")
                    XCTAssertLessThan(elapsed, Self.writeLockWait, "/healthz waited for the write lock")
                }
            } catch {
                try await lock.release()
                throw error
            }
            try await lock.release()
            try await writer.close()
        } catch {
            try await harness.shutdown()
            throw error
        }
        try await harness.shutdown()
    }
}

/// Another connection's transaction (`BEGIN IMMEDIATE`: SQLite's write lock), kept open until
/// ``release()``.
struct WriteLockHolder {
    private let release: AsyncStream<Void>.Continuation
    private let task: Task<Void, any Error>

    static func hold(_ store: SQLiteStore) async throws -> WriteLockHolder {
        let (begun, begin) = AsyncStream<Void>.makeStream()
        let (released, release) = AsyncStream<Void>.makeStream()
        let task = Task {
            defer { begin.finish() }
            try await store.transaction { _ in
                begin.yield()
                for await _ in released { break }
            }
        }
        var holding = false
        for await _ in begun {
            holding = true
            break
        }
        guard holding else {
            try await task.value
            throw StoreError.engine("the write transaction ended before it began")
        }
        return WriteLockHolder(release: release, task: task)
    }

    private init(release: AsyncStream<Void>.Continuation, task: Task<Void, any Error>) {
        self.release = release
        self.task = task
    }

    func release() async throws {
        release.yield()
        release.finish()
        try await task.value
    }
}
