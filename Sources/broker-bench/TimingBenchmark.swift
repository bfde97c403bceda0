import BrokerCore
import BrokerCrypto
import BrokerSQLite
import Foundation
import Logging

/// `broker-bench timing`: does a wrong password answer in the same time whatever the account?
/// Measures the wall-clock latency of `PasswordAuthenticator.authenticate` with a wrong password
/// for four kinds of username, interleaved in random order so that drift in the machine's load
/// spreads over all of them:
/// - `unknown-user`: no such account (the dummy argon2id verification),
/// - `argon2id-current`: a hash at the configured parameters (default m=19456,t=2,p=1),
/// - `argon2-old-cost`: an argon2id hash at Django's `Argon2PasswordHasher` cost (m=102400,t=2,p=8),
/// - `pbkdf2-imported`: a Django `pbkdf2_sha256` hash (default 1,000,000 iterations, Django 5.2's),
/// once with `login_failure_floor_ms` as given (default 1000) and once with no floor (0), and
/// prints each case's percentiles.
struct TimingBenchmark {
    var samples = 20
    var floorMilliseconds = 1000
    var pbkdf2Iterations = 1_000_000

    init(parsing arguments: [String]) throws {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            func integer(_ range: ClosedRange<Int>) throws -> Int {
                guard let text = iterator.next(), let value = Int(text), range.contains(value) else {
                    throw BenchError("\(argument) N with N in \(range)")
                }
                return value
            }
            switch argument {
            case "--samples": samples = try integer(1...10_000)
            case "--floor-ms": floorMilliseconds = try integer(0...60_000)
            case "--pbkdf2-iterations": pbkdf2Iterations = try integer(1...10_000_000)
            default: throw BenchError("unknown option \(argument)")
            }
        }
    }

    enum Case: String, CaseIterable {
        case unknownUser = "unknown-user"
        case argon2idCurrent = "argon2id-current"
        case argon2OldCost = "argon2-old-cost"
        case pbkdf2Imported = "pbkdf2-imported"

        var username: String {
            switch self {
            case .unknownUser: "nobody"
            case .argon2idCurrent: "current"
            case .argon2OldCost: "oldcost"
            case .pbkdf2Imported: "imported"
            }
        }
    }

    func run() async throws {
        print("samples=\(samples) per case, pbkdf2 iterations=\(pbkdf2Iterations), milliseconds (p50 p90 p99 max)")
        for floor in Set([0, floorMilliseconds]).sorted(by: >) {
            let fixture = try await TimingFixture.make(floorMilliseconds: floor, pbkdf2Iterations: pbkdf2Iterations)
            var latencies: [Case: [Double]] = [:]
            // One warm-up round, then the cases in a fresh random order per round.
            for kind in Case.allCases { _ = try await fixture.wrongPassword(kind.username) }
            for _ in 0..<samples {
                for kind in Case.allCases.shuffled() {
                    latencies[kind, default: []].append(try await fixture.wrongPassword(kind.username))
                }
            }
            var medians: [Double] = []
            for kind in Case.allCases {
                let sorted = latencies[kind, default: []].sorted()
                medians.append(Self.percentile(sorted, 0.5))
                print(
                    "floor=\(floor)ms \(kind.rawValue.padding(toLength: 17, withPad: " ", startingAt: 0))"
                        + " p50=\(Self.format(Self.percentile(sorted, 0.5))) p90=\(Self.format(Self.percentile(sorted, 0.9)))"
                        + " p99=\(Self.format(Self.percentile(sorted, 0.99))) max=\(Self.format(sorted.last ?? 0))")
            }
            print("floor=\(floor)ms spread of medians=\(Self.format((medians.max() ?? 0) - (medians.min() ?? 0)))")
            try await fixture.shutdown()
        }
    }

    /// Nearest-rank percentile of sorted values.
    static func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count, max(1, rank)) - 1]
    }

    static func format(_ milliseconds: Double) -> String { String(format: "%.1f", milliseconds) }
}

/// A broker core on a temporary directory with one account per hash kind and a throttle that
/// never refuses.
private struct TimingFixture {
    let directory: URL
    let services: BrokerServices

    static let password = "the right password, never sent"

    static func make(floorMilliseconds: Int, pbkdf2Iterations: Int) async throws -> TimingFixture {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = BrokerConfiguration()
        configuration.dataDirectory = directory.appendingPathComponent("data").path
        configuration.keysDirectory = directory.appendingPathComponent("keys").path
        configuration.loginFailureFloorMilliseconds = floorMilliseconds
        configuration.loginThrottleUserIP = 100_000
        configuration.loginThrottleUser = 100_000
        configuration.loginThrottleIP = 1_000_000
        configuration.auditLog = directory.appendingPathComponent("audit.log").path
        try configuration.validate()
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        try FilePermissions.ensurePrivateDirectory(configuration.dataDirectory)
        let store = try await SQLiteStore.open(path: configuration.databasePath, logger: logger)
        let ring = KeyRing(try KeyDirectory(path: configuration.keysDirectory, logger: logger).loadOrInitialize(algorithm: .es256))
        let services = try await BrokerServices(configuration: configuration, store: store, keyRing: ring, logger: logger)
        try await services.start()
        let accounts = AccountAdministration(store: store, pool: services.passwords, clock: SystemWallClock())
        try await accounts.addUser("current", password: password, by: .operator)
        let djangoArgon2 = try PasswordHasher(parameters: Argon2idParameters(memoryKiB: 102_400, iterations: 2, parallelism: 8))
            .hash(password)
        let salt = SecureRandom.bytes(12).map { String(format: "%02x", $0) }.joined()
        // Any 32 bytes: a wrong password never matches, and the cost is in the iterations.
        let importedPBKDF2 = "pbkdf2_sha256$\(pbkdf2Iterations)$\(salt)$\(Data(SecureRandom.bytes(32)).base64EncodedString())"
        for (username, hash) in [("oldcost", djangoArgon2), ("imported", importedPBKDF2)] {
            let user = try await accounts.addUser(username, password: nil, by: .operator)
            try await store.transaction { tx in try await tx.updatePasswordHash(userID: user.id, to: hash) }
        }
        return TimingFixture(directory: directory, services: services)
    }

    /// Milliseconds until the wrong password's `invalid_credentials`.
    func wrongPassword(_ username: String) async throws -> Double {
        let start = ContinuousClock.now
        do {
            _ = try await services.orgTokens.authenticator.authenticate(
                username: username, password: "a wrong password", clientIP: "192.0.2.1")
            throw BenchError("a wrong password was accepted for \(username)")
        } catch let error as BrokerError where error.code == .invalidCredentials {
            return Throughput.elapsedSeconds(since: start) * 1000
        }
    }

    func shutdown() async throws {
        try await services.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }
}
