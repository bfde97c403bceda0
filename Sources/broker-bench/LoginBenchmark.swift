import BrokerCore
import BrokerCrypto
import BrokerSQLite
import Foundation
import Logging

/// `broker-bench login`: is a PAT login with a warm identity cache bounded by token signing?
/// Measures, on the embedded SQLite store, wall-clock operations per second of
/// - `pat`: `GitHubLoginService.generation2Login` whose identity is cached (no GitHub call),
/// - `refresh`: a refresh-grant rotation (`OrgTokenService.refresh`, one write transaction),
/// - `sign`: `TokenIssuer.issue` alone (claims, `jti`, signature),
/// with `concurrency` operations in flight.
struct LoginBenchmark {
    var seconds: Double = 2
    var algorithms: [JWSAlgorithm] = [.rs256, .es256]
    var concurrencies: [Int] = [1, 8]

    init(parsing arguments: [String]) throws {
        var iterator = arguments.makeIterator()
        var chosen: [JWSAlgorithm] = []
        while let argument = iterator.next() {
            switch argument {
            case "--seconds":
                guard let text = iterator.next(), let value = Double(text), value > 0 else { throw BenchError("--seconds N") }
                seconds = value
            case "--alg":
                guard let text = iterator.next(), let algorithm = JWSAlgorithm(rawValue: text) else {
                    throw BenchError("--alg \(JWSAlgorithm.allCases.map(\.rawValue).joined(separator: "|"))")
                }
                chosen.append(algorithm)
            default:
                throw BenchError("unknown option \(argument)")
            }
        }
        if !chosen.isEmpty { algorithms = chosen }
    }

    func run() async throws {
        for algorithm in algorithms {
            let fixture = try await Fixture.make(algorithm)
            for concurrency in concurrencies {
                let sign = try await measure(concurrency) { try await fixture.sign() }
                let pat = try await measure(concurrency) { try await fixture.patLogin() }
                let refresh = try await measure(concurrency) { try await fixture.refresh() }
                print(
                    "\(algorithm.rawValue) concurrency=\(concurrency) pat-login-warm=\(Int(pat)) refresh-grant=\(Int(refresh)) "
                        + "sign=\(Int(sign)) pat/sign=\(String(format: "%.2f", pat / sign)) "
                        + "refresh/sign=\(String(format: "%.2f", refresh / sign))")
            }
            try await fixture.shutdown()
        }
    }

    private func measure(_ concurrency: Int, _ operation: @escaping @Sendable () async throws -> Void) async throws -> Double {
        try await Throughput.measure(seconds: seconds, concurrency: concurrency, warmUp: 32, operation)
    }
}

/// A broker core on a temporary directory with one GitHub-mapped organization and a GitHub
/// that always answers the same (its answer is cached after the first login anyway).
private struct Fixture: Sendable {
    let directory: URL
    let services: BrokerServices
    let github: GitHubLoginService
    let grant: TokenIssuer.Grant
    let refreshTokens: RefreshSupply

    static func make(_ algorithm: JWSAlgorithm) async throws -> Fixture {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = BrokerConfiguration()
        configuration.dataDirectory = directory.appendingPathComponent("data").path
        configuration.keysDirectory = directory.appendingPathComponent("keys").path
        configuration.signingAlgorithm = algorithm
        configuration.argon2 = Argon2idParameters(memoryKiB: 64, iterations: 1, parallelism: 1)
        configuration.githubOrganizations = [GitHubOrganizationMapping(organization: "bench", githubOrganization: "BenchOrg")]
        // One address and a few sessions do all the work: the throttles would measure themselves.
        configuration.githubLoginThrottleIP = 1_000_000
        configuration.refreshThrottleSession = 10_000
        try configuration.validate()
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        try FilePermissions.ensurePrivateDirectory(configuration.dataDirectory)
        let store = try await SQLiteStore.open(path: configuration.databasePath, logger: logger)
        let organization = try await store.transaction { tx in
            try await tx.insertOrganization(name: "bench", clusterName: "bench", createdAt: Date())
        }
        let ring = KeyRing(try KeyDirectory(path: configuration.keysDirectory, logger: logger).loadOrInitialize(algorithm: algorithm))
        let services = try await BrokerServices(
            configuration: configuration, store: store, keyRing: ring, logger: logger, githubAPI: ConstantGitHub())
        try await services.start()
        let github = services.github!
        _ = try await github.generation2Login(githubToken: "ghp_bench", method: .githubPAT)
        let user = try await store.transaction { tx in try await tx.user(githubLogin: "bench-user") }!
        let grant = TokenIssuer.Grant.organization(
            user: user, organization: organization, role: .member, authenticatedAt: Date(),
            authenticationMethods: ["github"], identityProvider: "github", client: .slideRuleDefault)
        // One refresh chain per task in flight.
        var chains: [String] = []
        for _ in 0..<16 {
            chains.append(
                try await services.orgTokens.startSession(
                    user: user, organization: organization, role: .member, methods: [.github], identityProvider: "github",
                    client: .slideRuleDefault
                ).refresh)
        }
        return Fixture(
            directory: directory, services: services, github: github, grant: grant, refreshTokens: RefreshSupply(chains))
    }

    func sign() async throws {
        _ = try await services.issuer.issue(grant, lifetime: 3600)
    }

    func patLogin() async throws {
        _ = try await github.generation2Login(githubToken: "ghp_bench", method: .githubPAT)
    }

    /// Each task rotates its own chain of refresh tokens.
    func refresh() async throws {
        let token = refreshTokens.take()
        let bundle = try await services.orgTokens.refresh(token)
        refreshTokens.put(bundle.refresh)
    }

    func shutdown() async throws {
        try await services.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Hands refresh tokens to concurrent tasks, each token to one task at a time.
private final class RefreshSupply: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var tokens: [String]

    init(_ chains: [String]) { tokens = chains }

    func take() -> String {
        lock.lock()
        defer { lock.unlock() }
        return tokens.popLast() ?? ""
    }

    func put(_ token: String) {
        lock.lock()
        tokens.append(token)
        lock.unlock()
    }
}

private struct ConstantGitHub: GitHubAPI {
    func user(token: String) async throws(GitHubError) -> GitHubUser { GitHubUser(login: "bench-user", id: 1) }
    func organizationMembership(token: String, organization: String, login: String) async throws(GitHubError)
        -> GitHubOrganizationMembership?
    { GitHubOrganizationMembership(state: "active", role: "member") }
    func teams(token: String) async throws(GitHubError) -> [GitHubTeam] { [] }
    func requestDeviceCode(scope: String) async throws(GitHubError) -> GitHubDeviceCode { throw .unavailable("bench") }
    func pollDeviceAuthorization(deviceCode: String) async throws(GitHubError) -> GitHubDevicePoll { throw .unavailable("bench") }
}
