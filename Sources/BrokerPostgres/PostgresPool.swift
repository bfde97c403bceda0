import BrokerCore
import BrokerSync
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// The store's pool of connections (postgres-nio's `PostgresClient` and the task that runs it),
/// which the down verdict's probe replaces when the database answers again.
///
/// Why replace it: a pool whose connection attempts keep failing spaces them out, 1.25 times
/// longer each time from 100 ms up to a minute (postgres-nio's `calculateBackoff`), and in
/// between refuses or holds every lease. After a long outage it finds the database back only at
/// its next attempt, up to a minute after the database's return. So the probe connects directly
/// (``probe(timeout:)``), and when that succeeds a new pool takes the old one's place
/// (``replace()``): it connects at its first lease.
///
/// A replaced pool is retired, never cut: a lease begun on it (waiting for a connection or
/// holding one) goes on, and its run task is cancelled, closing its connections, once the last
/// such lease has ended, or after the retirement grace at the latest.
///
/// ```swift
/// let pool = try PostgresPool(settings: settings, logger: logger)
/// let one = try await pool.withClient { client in try await client.query("SELECT 1", logger: logger).collect() }
/// try await pool.probe(timeout: .seconds(5))   // throws when the database does not answer
/// pool.replace()
/// await pool.close()
/// ```
final class PostgresPool: Sendable {
    private struct Generation: Sendable {
        let number: Int
        let client: PostgresClient
        let runTask: Task<Void, Never>
    }

    private struct State: Sendable {
        var current: Generation
        /// Leases waiting for or holding a connection, by generation (absent: none).
        var users: [Int: Int] = [:]
        /// Replaced pools still running, each with the task that shuts it down.
        var retiring: [Int: Task<Void, Never>] = [:]
        var closed = false
    }

    /// How long a replaced pool goes on serving the leases begun on it before it is shut down
    /// regardless: every statement is bounded well within it, so a lease still held is stuck.
    static let defaultRetirementGrace: Duration = .seconds(60)

    private let configuration: PostgresClient.Configuration
    /// The TLS settings of a TCP connection (`nil`: none), for the probe's direct connection.
    private let tls: TLSConfiguration?
    private let url: DatabaseURL
    private let logger: Logger
    private let retirementGrace: Duration
    private let state: Locked<State>

    init(
        settings: PostgresStore.Settings, logger: Logger, retirementGrace: Duration = PostgresPool.defaultRetirementGrace
    ) throws {
        let configuration = try PostgresStore.clientConfiguration(settings)
        self.configuration = configuration
        self.tls = settings.url.socketDirectory == nil ? try PostgresStore.tlsConfiguration(settings.url) : nil
        self.url = settings.url
        self.logger = logger
        self.retirementGrace = retirementGrace
        self.state = Locked(State(current: Self.start(number: 1, configuration, logger: logger)))
    }

    private static func start(number: Int, _ configuration: PostgresClient.Configuration, logger: Logger) -> Generation {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return Generation(number: number, client: client, runTask: Task { await client.run() })
    }

    /// Runs `body` with the current pool. A pool replaced meanwhile keeps running until `body`
    /// has returned.
    func withClient<T: Sendable>(_ body: (PostgresClient) async throws -> T) async throws -> T {
        let generation = self.state.withLock { state in
            state.users[state.current.number, default: 0] += 1
            return state.current
        }
        defer { self.release(generation.number) }
        return try await body(generation.client)
    }

    private func release(_ number: Int) {
        let retirement: Task<Void, Never>? = self.state.withLock { state in
            let left = (state.users[number] ?? 1) - 1
            state.users[number] = left > 0 ? left : nil
            return left > 0 ? nil : state.retiring[number]
        }
        // The last lease of a replaced pool ended: it shuts down now instead of after the grace.
        retirement?.cancel()
    }

    /// Opens a connection with the pool's configuration directly, not through the pool (whose
    /// backoff may hold its next attempt back), and closes it again.
    /// - Throws: when the database does not accept it within `timeout` (the connect timeout):
    ///   what postgres-nio threw, or ``StoreError/unavailable(_:)`` at the deadline.
    func probe(timeout: Duration) async throws {
        let configuration = try await Self.connectionConfiguration(self.configuration, tls: self.tls)
        let logger = self.logger
        let first = await withTaskGroup(of: Result<PostgresConnection?, any Error>.self) { group in
            group.addTask {
                do {
                    return .success(try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger))
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return .success(nil)
            }
            let first = await group.next() ?? .success(nil)
            group.cancelAll()
            // A connection that completed at the deadline is closed, not left open.
            for await late in group {
                if case .success(let connection?) = late { try? await connection.close() }
            }
            return first
        }
        switch first {
        case .success(let connection?):
            try? await connection.close()
        case .success(nil):
            throw StoreError.unavailable("the database accepted no connection within \(PostgresStore.milliseconds(timeout)) ms")
        case .failure(let error):
            throw error
        }
    }

    /// Puts a new pool in the current one's place and retires the old one (see the type's
    /// documentation). Returns false, doing nothing, once the pool is closed.
    @discardableResult
    func replace() -> Bool {
        let (configuration, logger, grace, lockedState) = (self.configuration, self.logger, self.retirementGrace, self.state)
        let old: Generation? = self.state.withLock { state in
            guard !state.closed else { return nil }
            let old = state.current
            state.current = Self.start(number: old.number + 1, configuration, logger: logger)
            let wait = state.users[old.number] == nil ? Duration.zero : grace
            state.retiring[old.number] = Task {
                // Cancelled early by the release of its last lease.
                try? await Task.sleep(for: wait)
                old.runTask.cancel()
                await old.runTask.value
                lockedState.withLock { _ = $0.retiring.removeValue(forKey: old.number) }
            }
            return old
        }
        guard let old else { return false }
        logger.warning(
            "database connection pool replaced: the database accepts connections again, the pool was still backing off",
            metadata: ["database": "\(self.url)", "pool": "\(old.number + 1)"])
        return true
    }

    /// Which pool is current: 1 for the first, one more for each replacement (tests read it).
    var generation: Int { self.state.withLock { $0.current.number } }

    /// Replaced pools not yet shut down (tests read it).
    var retiringCount: Int { self.state.withLock { $0.retiring.count } }

    /// Waits until every replaced pool has shut down (tests).
    func retirementsFinished() async {
        for task in self.state.withLock({ Array($0.retiring.values) }) { await task.value }
    }

    /// Shuts the current pool and every retired one still running down, and waits for them.
    /// Later leases fail; the pool is not replaced any more.
    func close() async {
        let (current, retiring) = self.state.withLock { state in
            state.closed = true
            return (state.current, Array(state.retiring.values))
        }
        current.runTask.cancel()
        for task in retiring { task.cancel() }
        await current.runTask.value
        for task in retiring { await task.value }
    }

    deinit {
        let (current, retiring) = self.state.withLock { ($0.current, Array($0.retiring.values)) }
        current.runTask.cancel()
        for task in retiring { task.cancel() }
    }

    /// The configuration of one connection as the pool opens it (postgres-nio's
    /// `ConnectionFactory.makeConnectionConfig`), derived from the pool's own configuration so
    /// that the probe and the pool cannot drift apart.
    static func connectionConfiguration(
        _ client: PostgresClient.Configuration, tls: TLSConfiguration?
    ) async throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let path = client.unixSocketPath {
            configuration = PostgresConnection.Configuration(
                unixSocketPath: path, username: client.username, password: client.password, database: client.database)
        } else {
            var connectionTLS = PostgresConnection.Configuration.TLS.disable
            if let tls {
                // Trust roots are read from files: on NIO's thread pool, never on an event loop.
                let context = try await NIOThreadPool.singleton.runIfActive { try NIOSSLContext(configuration: tls) }
                connectionTLS = .require(context)
            }
            configuration = PostgresConnection.Configuration(
                host: client.host ?? "", port: client.port ?? 5432, username: client.username, password: client.password,
                database: client.database, tls: connectionTLS)
        }
        configuration.options.connectTimeout = TimeAmount(client.options.connectTimeout)
        configuration.options.tlsServerName = client.options.tlsServerName
        configuration.options.requireBackendKeyData = client.options.requireBackendKeyData
        configuration.options.additionalStartupParameters = client.options.additionalStartupParameters
        return configuration
    }
}
