import BrokerCore
import BrokerSQLite
import BrokerSync
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
        try await Self.whileAnotherConnectionHoldsTheWriteLock { client in
            let start = ContinuousClock.now
            let (status, body) = try await client.getJSON("/healthz")
            let elapsed = ContinuousClock.now - start
            XCTAssertEqual(status, .ok)
            XCTAssertEqual(body["status"] as? String, "ok")
            XCTAssertLessThan(elapsed, Self.writeLockWait, "/healthz waited for the write lock")
        }
    }

    /// `/livez` and `/readyz` answer `{"status":"ok"}` on a healthy broker, and HEAD as GET.
    func testLivezAndReadyzAnswerOKToGetAndHead() async throws {
        let harness = try await ServerHarness.make()
        do {
            try await harness.withClient { client in
                for path in ["/livez", "/readyz", "/livez/", "/readyz/"] {
                    let (status, body) = try await client.getJSON(path)
                    XCTAssertEqual(status, .ok, path)
                    XCTAssertEqual(body as NSDictionary, ["status": "ok"], path)
                    try await client.execute(uri: path, method: .head) { response in
                        XCTAssertEqual(response.status, .ok, "HEAD \(path)")
                        XCTAssertEqual(response.body.readableBytes, 0, "HEAD \(path)")
                    }
                }
            }
        } catch {
            try await harness.shutdown()
            throw error
        }
        try await harness.shutdown()
    }

    /// A store that cannot be read: the replica is alive but not ready, and says when to ask again.
    func testReadyzIs503WithRetryAfterWhenTheStoreCannotBeRead() async throws {
        let outage = StoreOutage()
        let harness = try await ServerHarness.make(wrapStore: { OutageStore($0, outage: outage, failure: .engine("unable to open database file")) })
        do {
            try await harness.withClient { client in
                outage.begin()
                try await Self.assertNotReady(client, detail: "the store is not reachable")
                let (live, _) = try await client.getJSON("/livez")
                XCTAssertEqual(live, .ok, "/livez consults no store")
                let (health, _) = try await client.getJSON("/healthz")
                XCTAssertEqual(health, .serviceUnavailable)
                outage.end()
                let (ready, _) = try await client.getJSON("/readyz")
                XCTAssertEqual(ready, .ok, "ready again once the store answers")
            }
        } catch {
            try await harness.shutdown()
            throw error
        }
        try await harness.shutdown()
    }

    /// A ring without an active signing key cannot issue tokens: not ready.
    func testReadyzIs503WithoutAnActiveSigningKey() async throws {
        let harness = try await ServerHarness.make()
        do {
            harness.services.keyRing.replace(with: try KeyRingSnapshot(version: 99, keys: []))
            try await harness.withClient { client in
                try await Self.assertNotReady(client, detail: "no active signing key")
                let (live, _) = try await client.getJSON("/livez")
                XCTAssertEqual(live, .ok)
            }
        } catch {
            try await harness.shutdown()
            throw error
        }
        try await harness.shutdown()
    }

    /// Readiness reads too: a CLI holding the write lock does not take replicas out of rotation.
    func testReadyzAnswersWhileAnotherConnectionHoldsTheWriteLock() async throws {
        try await Self.whileAnotherConnectionHoldsTheWriteLock { client in
            let start = ContinuousClock.now
            let (status, _) = try await client.getJSON("/readyz")
            XCTAssertEqual(status, .ok)
            XCTAssertLessThan(ContinuousClock.now - start, Self.writeLockWait, "/readyz waited for the write lock")
        }
    }

    /// Runs `body` against a broker while a second connection to its database (a CLI import,
    /// say) holds SQLite's write lock.
    private static func whileAnotherConnectionHoldsTheWriteLock(
        _ body: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let harness = try await ServerHarness.make()
        do {
            let writer = try await SQLiteStore.open(
                path: harness.services.configuration.databasePath, logger: Logger(label: "test.cli"))
            let lock = try await WriteLockHolder.hold(writer)
            do {
                try await harness.withClient(body)
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

    private static func assertNotReady(
        _ client: any TestClientProtocol, detail: String, file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        for method in [HTTPRequest.Method.get, .head] {
            try await client.execute(uri: "/readyz", method: method) { response in
                XCTAssertEqual(response.status, .serviceUnavailable, "\(method)", file: file, line: line)
                XCTAssertEqual(response.headers[.retryAfter], "5", "\(method)", file: file, line: line)
                guard method == .get else { return }
                let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? NSDictionary
                XCTAssertEqual(body, ["error": "unavailable", "detail": detail], file: file, line: line)
                let answer = LiveAnswer(
                    method: method, uri: "/readyz", status: response.status, headers: response.headers,
                    body: Array(response.body.readableBytesView))
                XCTAssertEqual(try OpenAPIContract.load().violations(of: answer), [], file: file, line: line)
            }
        }
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
