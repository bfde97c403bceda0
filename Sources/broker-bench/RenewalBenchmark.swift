import BrokerCore
import BrokerCrypto
import BrokerPostgres
import BrokerSQLite
import BrokerSync
import Foundation
import Logging

/// `broker-bench renewals`: refresh-token renewals per second in the store alone, through the
/// broker's own ``RefreshTokenRotation`` (the statements, locks and durability of a refresh
/// grant, without HTTP, signing or the audit line), with 1 and 16 chains in flight, each rotated
/// by one task at a time. On the embedded SQLite in a temporary directory, or on the PostgreSQL
/// of `--database-url` (a throwaway database: it creates the schema and rows). Beside it, half a
/// core's RS256 signing rate (`openssl speed`), issue 13's target for refresh grants over HTTP:
/// what the store sustains here is what replicas, each signing on its own cores, can add up to.
struct RenewalBenchmark {
    var seconds: Double = 5
    var databaseURL: String?
    var concurrencies = [1, 16]

    init(parsing arguments: [String]) throws {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--seconds":
                guard let text = iterator.next(), let value = Double(text), value > 0 else { throw BenchError("--seconds N") }
                seconds = value
            case "--database-url":
                guard let text = iterator.next() else { throw BenchError("--database-url URL") }
                databaseURL = text
            default:
                throw BenchError("unknown option \(argument)")
            }
        }
    }

    /// `signing`: one core's RS256 signatures per second (``OpenSSLSpeed``, measured on the main
    /// thread).
    func run(signing: Double?) async throws {
        print("reference half-a-core-rs256-sign=\(signing.map { String(Int($0 / 2)) } ?? "n/a")/s (openssl speed rsa2048)")
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-bench-renewals-\(UUID().uuidString)")
        let store: any Store
        let engine: String
        if let databaseURL {
            store = try await PostgresStore.open(
                PostgresStore.Settings(url: try DatabaseURL(parsing: databaseURL), poolSize: concurrencies.max() ?? 16), logger: logger)
            engine = "postgres"
        } else {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            store = try await SQLiteStore.open(path: directory.appendingPathComponent("broker.sqlite3").path, logger: logger)
            engine = "sqlite"
        }
        defer { try? FileManager.default.removeItem(at: directory) }
        let rotation = RefreshTokenRotation(secret: SecureRandom.bytes(32), policy: SessionPolicy(accessLifetime: 600, refreshLifetime: 86_400, sessionMaxLifetime: 86_400, refreshReuseGrace: 10))
        for concurrency in concurrencies {
            let chains = try await Self.startChains(concurrency, in: store, rotation: rotation, label: "c\(concurrency)")
            let rate = try await Throughput.measure(seconds: seconds, concurrency: concurrency) {
                let presented = chains.withLock { $0.removeLast() }
                let outcome = try await store.lockingTransaction { tx in
                    try await rotation.rotate(presented, in: tx, now: Date()) { _ in }
                }
                guard case .rotated(_, let successor, _, _) = outcome else { throw BenchError("a renewal was refused: \(outcome)") }
                chains.withLock { $0.append(successor) }
            }
            let ratio = signing.map { String(format: "%.2f", rate / ($0 / 2)) } ?? "n/a"
            print("\(engine) renewals concurrency=\(concurrency) transactions=\(Int(rate))/s ratio=\(ratio)")
        }
        try await store.close()
    }

    /// `count` sessions of one account, each with its first refresh token; returns the tokens.
    private static func startChains(
        _ count: Int, in store: any Store, rotation: RefreshTokenRotation, label: String
    ) async throws -> Locked<[String]> {
        let now = Date()
        let tokens = try await store.transaction { tx in
            let user = try await tx.insertUser(NewUser(username: "bench-\(label)-\(UUID().uuidString.prefix(8))", passwordHash: nil, createdAt: now))
            let organization = try await tx.insertOrganization(
                name: "bench-\(label)-\(UUID().uuidString.prefix(8))", clusterName: "bench-\(UUID().uuidString.prefix(8))", createdAt: now)
            try await tx.upsertMembership(
                Membership(organizationID: organization.id, userID: user.id, role: .member, isActive: true, createdAt: now))
            var tokens: [String] = []
            for _ in 0..<count {
                tokens.append(try await rotation.startFamily(in: tx, for: user, organizationID: organization.id, methods: [.password], client: .slideRuleDefault, now: now).token)
            }
            return tokens
        }
        return Locked(tokens)
    }
}
