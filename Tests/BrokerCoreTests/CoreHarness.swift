import BrokerCore
import BrokerCrypto
import BrokerSQLite
import Foundation
import Logging
import XCTest

/// A broker's core on a temporary directory, a manual clock and cheap argon2id parameters.
final class CoreHarness {
    let directory: URL
    let clock: ManualWallClock
    let services: BrokerServices
    let keyDirectory: KeyDirectory

    static let cheapArgon2 = Argon2idParameters(memoryKiB: 64, iterations: 1, parallelism: 1)
    static let password = "correct horse battery staple"

    static func make(
        algorithm: JWSAlgorithm = .es256, githubAPI: (any GitHubAPI)? = nil, auditSink: (any AuditSink)? = nil,
        configure: (inout BrokerConfiguration) -> Void = { _ in },
        wrapStore: (any Store) -> any Store = { $0 }
    ) async throws -> CoreHarness {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-core-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = BrokerConfiguration()
        configuration.dataDirectory = directory.appendingPathComponent("data").path
        configuration.keysDirectory = directory.appendingPathComponent("keys").path
        configuration.signingAlgorithm = algorithm
        configuration.argon2 = cheapArgon2
        configuration.loginFailureFloorMilliseconds = 0  // tests of the floor set their own
        configuration.passwordHashConcurrency = 2
        configure(&configuration)
        try configuration.validate()
        let clock = ManualWallClock()
        let logger = Logger(label: "test")
        try FilePermissions.ensurePrivateDirectory(configuration.dataDirectory)
        let store = wrapStore(try await SQLiteStore.open(path: configuration.databasePath, logger: logger))
        let keys = KeyDirectory(path: configuration.keysDirectory, clock: clock)
        let ring = KeyRing(try keys.loadOrInitialize(algorithm: algorithm))
        // A GitHub mapping must name existing organizations.
        for mapping in configuration.githubOrganizations {
            try await store.transaction { tx in
                _ = try await tx.insertOrganization(name: mapping.organization, clusterName: mapping.organization, createdAt: clock.now())
            }
        }
        let services = try await BrokerServices(
            configuration: configuration, store: store, keyRing: ring, clock: clock, logger: logger,
            githubAPI: githubAPI, auditSink: auditSink)
        try await services.start()
        return CoreHarness(directory: directory, clock: clock, services: services, keyDirectory: keys)
    }

    private init(directory: URL, clock: ManualWallClock, services: BrokerServices, keyDirectory: KeyDirectory) {
        self.directory = directory
        self.clock = clock
        self.services = services
        self.keyDirectory = keyDirectory
    }

    func shutdown() async throws {
        try await services.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    /// alice, a member of org1; bob, a member of nothing; org2 with no members.
    func seed() async throws {
        let accounts = services.accounts
        try await accounts.addUser("alice", password: Self.password, by: .operator)
        try await accounts.addUser("bob", password: Self.password, by: .operator)
        try await accounts.addOrganization("org1", by: .operator)
        try await accounts.addOrganization("org2", clusterName: "cluster-two", by: .operator)
        try await accounts.addMember(organization: "org1", username: "alice", role: .member, by: .operator)
    }
}

/// Asserts that `body` throws a BrokerError with `code`.
func XCTAssertBrokerError<T>(
    _ code: ErrorCode, file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> T
) async {
    do {
        _ = try await body()
        XCTFail("expected \(code.rawValue), got success", file: file, line: line)
    } catch let error as BrokerError {
        XCTAssertEqual(error.code, code, "detail: \(error.detail)", file: file, line: line)
    } catch {
        XCTFail("expected \(code.rawValue), got \(error)", file: file, line: line)
    }
}

/// A test case with a fresh ``CoreHarness``, seeded (``CoreHarness/seed()``), for every test.
class SeededCoreTestCase: XCTestCase {
    var harness: CoreHarness!

    override func setUp() async throws {
        harness = try await CoreHarness.make()
        try await harness.seed()
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }
}
