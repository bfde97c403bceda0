import BrokerCore
import BrokerCrypto
import BrokerPortal
import BrokerSQLite
import BrokerServer
import BrokerSync
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import XCTest

/// A broker on a temporary directory, a manual clock and cheap argon2id, served over a real
/// loopback socket by HummingbirdTesting's live mode. Its log lines are captured, so tests can
/// check that no secret ever reaches them.
final class ServerHarness: Sendable {
    let directory: URL
    let clock: ManualWallClock
    let services: BrokerServices
    let logs: CapturedLogs

    static let password = "correct horse battery staple"

    static func make(
        algorithm: JWSAlgorithm = .rs256, githubAPI: (any GitHubAPI)? = nil, clock: ManualWallClock? = nil,
        configure: (inout BrokerConfiguration) -> Void = { _ in },
        wrapStore: (any Store) -> any Store = { $0 }
    ) async throws -> ServerHarness {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-http-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = BrokerConfiguration()
        configuration.dataDirectory = directory.appendingPathComponent("data").path
        configuration.keysDirectory = directory.appendingPathComponent("keys").path
        configuration.signingAlgorithm = algorithm
        configuration.argon2 = Argon2idParameters(memoryKiB: 64, iterations: 1, parallelism: 1)
        configuration.loginFailureFloorMilliseconds = 0  // tests of the floor set their own
        configure(&configuration)
        try configuration.validate()
        // Whole seconds, as tokens and the store count them.
        let clock = clock ?? ManualWallClock(Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down)))
        let logs = CapturedLogs()
        var logger = Logger(label: "test") { _ in logs.handler() }
        logger.logLevel = .trace
        try FilePermissions.ensurePrivateDirectory(configuration.dataDirectory)
        let store = wrapStore(try await SQLiteStore.open(path: configuration.databasePath, logger: logger))
        let ring = KeyRing(try KeyDirectory(path: configuration.keysDirectory, clock: clock).loadOrInitialize(algorithm: algorithm))
        // Organizations first: a GitHub mapping must name existing ones.
        let accounts = AccountAdministration(
            store: store, pool: PasswordHashingPool(hasher: PasswordHasher(parameters: configuration.argon2), concurrency: 1),
            clock: clock)
        try await accounts.addOrganization("org1", by: .operator)
        try await accounts.addOrganization("org2", by: .operator)
        for mapping in configuration.githubOrganizations where mapping.organization != "org1" && mapping.organization != "org2" {
            try await accounts.addOrganization(mapping.organization, by: .operator)
        }
        try await accounts.pool.shutdown()
        let services = try await BrokerServices(
            configuration: configuration, store: store, keyRing: ring, clock: clock, logger: logger, githubAPI: githubAPI)
        try await services.start()
        // The fixtures are not under test: they bypass the audit trail (which may be /dev/full).
        let fixtures = AccountAdministration(store: store, pool: services.passwords, clock: clock)
        try await fixtures.addUser("alice", password: password, by: .operator)
        try await fixtures.addUser("bob", password: password, by: .operator)
        try await fixtures.addMember(organization: "org1", username: "alice", role: .member, by: .operator)
        return ServerHarness(directory: directory, clock: clock, services: services, logs: logs)
    }

    private init(directory: URL, clock: ManualWallClock, services: BrokerServices, logs: CapturedLogs) {
        self.directory = directory
        self.clock = clock
        self.services = services
        self.logs = logs
    }

    /// Runs `body` against the application listening on a free loopback port; `portal` adds the
    /// portal's pages, as `broker serve` does by default. With `provisioner_url` set, scaling
    /// calls go to it through a client made for the run, as `broker serve` makes one.
    func withClient<Value: Sendable>(
        portal: Bool = false, _ body: @Sendable (any TestClientProtocol) async throws -> Value
    ) async throws -> Value {
        let logger = Logger(label: "test.http") { _ in self.logs.handler() }
        let provisioner = ProvisionerClient(configuration: services.configuration)
        let app = BrokerApplication.make(
            services: services, host: "127.0.0.1", port: 0, logger: logger,
            extraRoutes: portal ? [PortalRoutes(services: services)] : [], provisioner: provisioner)
        do {
            let value = try await app.test(.live) { client in try await body(client) }
            try await provisioner?.shutdown()
            return value
        } catch {
            try? await provisioner?.shutdown()
            throw error
        }
    }

    func shutdown() async throws {
        try await services.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }
}

extension TestClientProtocol {
    /// POSTs raw bytes and returns the status and the JSON object of the answer.
    func postJSON(_ path: String, _ body: String, headers: HTTPFields = [:]) async throws -> (HTTPResponse.Status, [String: Any]) {
        try await postBytes(path, Array(body.utf8), headers: headers)
    }

    func postBytes(_ path: String, _ body: [UInt8], headers: HTTPFields = [:]) async throws -> (HTTPResponse.Status, [String: Any]) {
        var all = headers
        all[.contentType] = "application/json"
        return try await execute(uri: path, method: .post, headers: all, body: ByteBuffer(bytes: body)) { response in
            (response.status, try Self.object(response))
        }
    }

    func getJSON(_ path: String, headers: HTTPFields = [:]) async throws -> (HTTPResponse.Status, [String: Any]) {
        try await execute(uri: path, method: .get, headers: headers) { response in
            (response.status, try Self.object(response))
        }
    }

    static func object(_ response: TestResponse) throws -> [String: Any] {
        try TestClientProtocolHelpers.object(response)
    }
}

struct NotAnObject: Error { var text: String }

/// Collects every log line (message and metadata) of a harness.
final class CapturedLogs: Sendable {
    private let lines = Locked<[String]>([])

    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }

    func handler() -> any LogHandler { Handler(sink: self) }

    struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.append("\(event.level) \(event.message) \(merged)")
        }
    }
}
