import BrokerCore
import BrokerCrypto
import BrokerSQLite
import Foundation
import Logging
import XCTest

/// Building the services has no side effect; `BrokerServices.start()` is the one start-up step.
final class ServicesStartupTests: XCTestCase {
    private var directory: URL!
    private var configuration = BrokerConfiguration()
    private let clock = ManualWallClock()

    override func setUp() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-startup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        configuration.dataDirectory = directory.appendingPathComponent("data").path
        configuration.keysDirectory = directory.appendingPathComponent("keys").path
        configuration.signingAlgorithm = .es256
        configuration.argon2 = CoreHarness.cheapArgon2
        configuration.loginFailureFloorMilliseconds = 0
        configuration.bootstrapAdmin = "root"
        configuration.bootstrapAdminPassword = "a bootstrap passphrase 42"
        try configuration.validate()
        try FilePermissions.ensurePrivateDirectory(configuration.dataDirectory)
    }

    override func tearDown() async throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Every file under the test's directory.
    private func files() -> Set<String> {
        let paths = FileManager.default.enumerator(atPath: directory.path)?.allObjects as? [String] ?? []
        return Set(paths)
    }

    func testBuildingTheServicesTouchesNeitherStoreNorFileAndStartDoesTheStartUpWork() async throws {
        let base = try await SQLiteStore.open(path: configuration.databasePath, logger: Logger(label: "test"))
        let ring = KeyRing(try KeyDirectory(path: configuration.keysDirectory, clock: clock).loadOrInitialize(algorithm: .es256))
        // A member with a session, made beside the services under test.
        let fixtures = AccountAdministration(
            store: base, pool: PasswordHashingPool(hasher: PasswordHasher(parameters: CoreHarness.cheapArgon2), concurrency: 1),
            clock: clock)
        try await fixtures.addUser("alice", password: CoreHarness.password, by: .operator)
        try await fixtures.addOrganization("org1", by: .operator)
        try await fixtures.addMember(organization: "org1", username: "alice", role: .member, by: .operator)
        try await fixtures.pool.shutdown()
        let filesBefore = files()

        let store = RecordingStore(base)
        let services = try await BrokerServices(configuration: configuration, store: store, keyRing: ring, clock: clock)

        XCTAssertEqual(store.calls, [], "building the services called the store")
        XCTAssertEqual(files(), filesBefore, "building the services created a file")
        XCTAssertFalse(FileManager.default.fileExists(atPath: configuration.auditLogPath))
        XCTAssertFalse(services.isStarted)
        let secrets = try await base.read { tx in
            [try await tx.serverSecret(named: RefreshTokenRotation.secretName), try await tx.serverSecret(named: AttemptedUsernames.secretName)]
        }
        XCTAssertEqual(secrets, [nil, nil])

        // What needs start-up state refuses loudly before start(), rather than working without it.
        let bundle = try await services.orgTokens.login(username: "alice", password: CoreHarness.password, organization: "org1")
        do {
            _ = try await services.orgTokens.refresh(bundle.refresh)
            XCTFail("a renewal worked before start-up loaded the refresh secret")
        } catch let error as ServicesNotStarted {
            XCTAssertEqual(error.missing, RefreshTokenRotation.secretName)
        }

        let callsBeforeStart = store.calls.count
        try await services.start()
        XCTAssertTrue(services.isStarted)
        XCTAssertGreaterThan(store.calls.count, callsBeforeStart, "start() did not use the store")
        let loaded = try await base.read { tx in
            [try await tx.serverSecret(named: RefreshTokenRotation.secretName), try await tx.serverSecret(named: AttemptedUsernames.secretName)]
        }
        XCTAssertTrue(loaded.allSatisfy { $0?.count == 32 }, "start() did not create the server secrets")
        // The unused refresh token from before works now.
        _ = try await services.orgTokens.refresh(bundle.refresh)
        try await services.shutdown()
    }

    /// On an empty store start-up also creates the bootstrap admin; a second start changes nothing.
    func testStartingTwiceKeepsTheSecretsAndCreatesNothingTwice() async throws {
        let store = try await SQLiteStore.open(path: configuration.databasePath, logger: Logger(label: "test"))
        let ring = KeyRing(try KeyDirectory(path: configuration.keysDirectory, clock: clock).loadOrInitialize(algorithm: .es256))
        let services = try await BrokerServices(configuration: configuration, store: store, keyRing: ring, clock: clock)
        let before = try await store.read { tx in try await tx.users() }
        XCTAssertEqual(before, [], "building the services created the bootstrap admin")
        try await services.start()
        let root = try await store.read { tx in try await tx.user(named: "root") }
        XCTAssertEqual(root?.globalRole, .admin, "start() did not apply the bootstrap admin")
        let first = services.attemptedUsernames.pseudonym("hunter2")
        try await services.start()
        XCTAssertEqual(services.attemptedUsernames.pseudonym("hunter2"), first)
        let users = try await store.read { tx in try await tx.users() }
        XCTAssertEqual(users.map(\.username), ["root"])
        try await services.shutdown()
    }
}
