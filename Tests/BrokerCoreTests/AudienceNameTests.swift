import BrokerCore
import BrokerCrypto
import Foundation
import Logging
import XCTest

@testable import BrokerSQLite

/// A cluster name or audience has one holder: the start-up check of `github_orgs` against the
/// store, reservations left by deleted organizations, service audiences, the store's constraint
/// between racing claims, and the migration that backfills the names of existing databases.
final class AudienceNameTests: XCTestCase {
    private var directory: URL!
    private var configuration = BrokerConfiguration()
    private let clock = ManualWallClock()

    override func setUp() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("audience-names-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        configuration.dataDirectory = directory.appendingPathComponent("data").path
        configuration.keysDirectory = directory.appendingPathComponent("keys").path
        configuration.signingAlgorithm = .es256
        configuration.argon2 = CoreHarness.cheapArgon2
        configuration.auditLog = directory.appendingPathComponent("audit.log").path
        try FilePermissions.ensurePrivateDirectory(configuration.dataDirectory)
    }

    override func tearDown() async throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func withStore<T>(_ body: (SQLiteStore, AccountAdministration) async throws -> T) async throws -> T {
        let store = try await SQLiteStore.open(path: configuration.databasePath, logger: Logger(label: "test"))
        let pool = PasswordHashingPool(hasher: PasswordHasher(parameters: CoreHarness.cheapArgon2), concurrency: 1)
        let accounts = AccountAdministration(store: store, pool: pool, clock: clock)
        do {
            let result = try await body(store, accounts)
            try await pool.shutdown()
            try await store.close()
            return result
        } catch {
            try? await pool.shutdown()
            try? await store.close()
            throw error
        }
    }

    /// Starts the broker's services with `github_orgs` giving org2 the team cluster `name`.
    private func start(teamCluster name: String) async throws {
        var configuration = configuration
        configuration.githubOrganizations = [
            GitHubOrganizationMapping(organization: "org2", githubOrganization: "Org2", teams: ["devs": name])
        ]
        try configuration.validate()
        let store = try await SQLiteStore.open(path: configuration.databasePath, logger: Logger(label: "test"))
        let ring = KeyRing(try KeyDirectory(path: configuration.keysDirectory, clock: clock).loadOrInitialize(algorithm: .es256))
        do {
            let services = try await BrokerServices(
                configuration: configuration, store: store, keyRing: ring, clock: clock, githubAPI: StubGitHub())
            do {
                try await services.start()
            } catch {
                try? await services.shutdown()
                throw error
            }
            try await services.shutdown()
        } catch {
            try? await store.close()
            throw error
        }
    }

    private func assertStartRefused(teamCluster name: String, mentioning words: [String], line: UInt = #line) async {
        do {
            try await start(teamCluster: name)
            XCTFail("the broker started with the team cluster \(name)", line: line)
        } catch let error as ConfigurationError {
            for word in words {
                XCTAssertTrue(error.description.contains(word), "\(error.description) lacks \(word)", line: line)
            }
        } catch {
            XCTFail("expected a ConfigurationError, got \(error)", line: line)
        }
    }

    func testStartUpRefusesATeamClusterThatIsAnotherOrganizationsPolicyAudienceReservationOrService() async throws {
        try await withStore { _, accounts in
            try await accounts.addOrganization("org1", by: .operator)
            try await accounts.addOrganization("org2", by: .operator)
            try await accounts.addOrganization("gone", clusterName: "gone-cluster", by: .operator)
            try await accounts.setTokenPolicy(
                organization: "org1", to: OrganizationTokenPolicy(audiences: ["org1", "org1-jupyter"]),
                brokerAccessLifetime: 3600, by: .operator)
            try await accounts.deleteOrganization("gone", by: .operator)
            try await accounts.addServiceAudience("monitor", by: .operator)
        }
        await assertStartRefused(teamCluster: "org1-jupyter", mentioning: ["org1-jupyter", "org1", "org2"])
        await assertStartRefused(teamCluster: "org1", mentioning: ["org1", "org2"])
        await assertStartRefused(teamCluster: "gone-cluster", mentioning: ["gone-cluster", "release-name", "gone"])
        await assertStartRefused(teamCluster: "monitor", mentioning: ["monitor", "service audience"])

        // A free name starts, and is org2's from then on: org1's policy cannot list it.
        try await start(teamCluster: "org2-dev")
        try await withStore { store, accounts in
            await XCTAssertBrokerError(.audienceTaken) {
                try await accounts.setTokenPolicy(
                    organization: "org1", to: OrganizationTokenPolicy(audiences: ["org1", "org2-dev"]),
                    brokerAccessLifetime: 3600, by: .operator)
            }
            let held = try await store.read { tx in try await tx.audienceName("org2-dev") }
            guard case .organization(_, .teamCluster)? = held?.holder else { return XCTFail("\(String(describing: held))") }
            // org2 may list its own team cluster; dropping it from the policy keeps it org2's.
            try await accounts.setTokenPolicy(
                organization: "org2", to: OrganizationTokenPolicy(audiences: ["org2", "org2-dev"]),
                brokerAccessLifetime: 3600, by: .operator)
            try await accounts.setTokenPolicy(
                organization: "org2", to: OrganizationTokenPolicy(), brokerAccessLifetime: 3600, by: .operator)
            await XCTAssertBrokerError(.audienceTaken) {
                try await accounts.setTokenPolicy(
                    organization: "org1", to: OrganizationTokenPolicy(audiences: ["org2-dev"]),
                    brokerAccessLifetime: 3600, by: .operator)
            }
        }
        // Restarting with the same configuration finds the names already org2's.
        try await start(teamCluster: "org2-dev")
    }

    func testADeletedOrganizationsNamesStayReservedUntilReleased() async throws {
        try await withStore { store, accounts in
            try await accounts.addOrganization("org1", by: .operator)
            try await accounts.addOrganization("org2", clusterName: "cluster-two", by: .operator)
            try await accounts.setTokenPolicy(
                organization: "org2", to: OrganizationTokenPolicy(audiences: ["cluster-two", "two-jupyter"]),
                brokerAccessLifetime: 3600, by: .operator)
            try await accounts.deleteOrganization("org2", by: .operator)
            for name in ["cluster-two", "two-jupyter"] {
                await XCTAssertBrokerError(.audienceTaken) {
                    try await accounts.setTokenPolicy(
                        organization: "org1", to: OrganizationTokenPolicy(audiences: ["org1", name]),
                        brokerAccessLifetime: 3600, by: .operator)
                }
                await XCTAssertBrokerError(.audienceTaken) {
                    try await accounts.addOrganization("new-\(name)", clusterName: name, by: .operator)
                }
                await XCTAssertBrokerError(.audienceTaken) { try await accounts.addServiceAudience(name, by: .operator) }
            }
            // The organization's own name is free (it is not an audience); a cluster name is only
            // released by an admin, and only once its organization is gone.
            await XCTAssertBrokerError(.forbidden) {
                try await accounts.releaseAudienceName("cluster-two", by: AdministrativeActor(user: User(id: 9, username: "eve", passwordHash: nil, isActive: true, createdAt: Date())))
            }
            await XCTAssertBrokerError(.conflict) { try await accounts.releaseAudienceName("org1", by: .operator) }
            await XCTAssertBrokerError(.notFound) { try await accounts.releaseAudienceName("never-held", by: .operator) }
            try await accounts.releaseAudienceName("two-jupyter", by: .operator)
            try await accounts.setTokenPolicy(
                organization: "org1", to: OrganizationTokenPolicy(audiences: ["org1", "two-jupyter"]),
                brokerAccessLifetime: 3600, by: .operator)
            let names = try await store.read { tx in try await tx.audienceNames() }
            XCTAssertEqual(names.map(\.name), ["cluster-two", "org1", "two-jupyter"])
            XCTAssertEqual(names.first?.holder, .reserved(formerOrganization: "org2"))
        }
    }

    func testServiceAudiencesAreOpenToEveryPolicyAndNeverAClusterName() async throws {
        try await withStore { _, accounts in
            try await accounts.addOrganization("org1", by: .operator)
            try await accounts.addOrganization("org2", by: .operator)
            try await accounts.addServiceAudience("monitor", by: .operator)
            for org in ["org1", "org2"] {
                let organization = try await accounts.setTokenPolicy(
                    organization: org, to: OrganizationTokenPolicy(audiences: [org, "monitor"]),
                    brokerAccessLifetime: 3600, by: .operator)
                XCTAssertEqual(organization.tokenAudience, [org, "monitor"])
            }
            await XCTAssertBrokerError(.audienceTaken) {
                try await accounts.addOrganization("org3", clusterName: "monitor", by: .operator)
            }
            await XCTAssertBrokerError(.audienceTaken) { try await accounts.addServiceAudience("org1", by: .operator) }
            await XCTAssertBrokerError(.alreadyExists) { try await accounts.addServiceAudience("monitor", by: .operator) }
            await XCTAssertBrokerError(.invalidOrganization) { try await accounts.addServiceAudience("*", by: .operator) }
            // Removing a service audience that policies list would leave their tokens naming an
            // unheld name: refused until no policy lists it.
            await XCTAssertBrokerError(.conflict) { try await accounts.removeServiceAudience("monitor", by: .operator) }
            for org in ["org1", "org2"] {
                try await accounts.setTokenPolicy(
                    organization: org, to: OrganizationTokenPolicy(), brokerAccessLifetime: 3600, by: .operator)
            }
            try await accounts.removeServiceAudience("monitor", by: .operator)
            await XCTAssertBrokerError(.notFound) { try await accounts.removeServiceAudience("monitor", by: .operator) }
            try await accounts.addOrganization("org3", clusterName: "monitor", by: .operator)
        }
    }

    /// The constraint, not a read before the write, decides: two transactions that each saw
    /// the name free cannot both record it; an organization holding names cannot be deleted
    /// without turning them into reservations.
    func testTheStoreRefusesASecondHolderWhateverTheWriterRead() async throws {
        try await withStore { store, accounts in
            let org1 = try await accounts.addOrganization("org1", by: .operator)
            let org2 = try await accounts.addOrganization("org2", by: .operator)
            try await store.transaction { tx in
                try await tx.insertAudienceName(AudienceName(name: "shared", holder: .organization(id: org1.id, use: .policyAudience)))
            }
            do {
                try await store.transaction { tx in
                    try await tx.insertAudienceName(
                        AudienceName(name: "shared", holder: .organization(id: org2.id, use: .policyAudience)))
                }
                XCTFail("a second organization recorded the same name")
            } catch StoreError.duplicate {}
            do {
                try await store.transaction { tx in try await tx.insertAudienceName(AudienceName(name: "org1", holder: .service)) }
                XCTFail("a service audience took a cluster name")
            } catch StoreError.duplicate {}
            do {
                _ = try await store.transaction { tx in try await tx.deleteOrganization(id: org1.id) }
                XCTFail("an organization holding names was deleted without reserving them")
            } catch StoreError.engine(let message) {
                XCTAssertTrue(message.contains("FOREIGN KEY"), message)
            }
        }
    }

    func testRacingPolicyUpdatesNeverGiveOneNameToTwoOrganizations() async throws {
        try await withStore { store, accounts in
            let organizations = ["org1", "org2", "org3", "org4"]
            for org in organizations { try await accounts.addOrganization(org, by: .operator) }
            for round in 0..<5 {
                let contested = "contested-\(round)"
                let winners = try await withThrowingTaskGroup(of: String?.self) { group in
                    for org in organizations {
                        group.addTask {
                            do {
                                try await accounts.setTokenPolicy(
                                    organization: org, to: OrganizationTokenPolicy(audiences: [org, contested]),
                                    brokerAccessLifetime: 3600, by: .operator)
                                return org
                            } catch let error as BrokerError where error.code == .audienceTaken {
                                return nil
                            }
                        }
                    }
                    return try await group.reduce(into: [String]()) { if let org = $1 { $0.append(org) } }
                }
                XCTAssertEqual(winners.count, 1, "round \(round): \(winners)")
                let holders = try await store.read { tx in try await tx.organizations() }
                    .filter { $0.tokenAudience.contains(contested) }.map(\.name)
                XCTAssertEqual(holders, winners)
                let held = try await store.read { tx in try await tx.audienceName(contested) }
                let winner = try await store.read { tx in try await tx.organization(named: winners[0]) }
                XCTAssertEqual(held?.holder, .organization(id: try XCTUnwrap(winner).id, use: .policyAudience))
            }
        }
    }

    // MARK: Migration

    private static let audienceNamesStep = Schema.migrations.first { step in
        step.statements.contains { $0.contains("CREATE TABLE audience_names") }
    }!

    private func openStore(through version: Int) async throws -> SQLiteStore {
        try await SQLiteStore.open(
            path: configuration.databasePath, logger: Logger(label: "test"),
            migrations: Schema.migrations.filter { $0.version <= version })
    }

    func testTheMigrationBackfillsTheNamesOfExistingOrganizations() async throws {
        let old = try await openStore(through: Self.audienceNamesStep.version - 1)
        // Rows as that schema held them (today's store writes columns it did not have yet).
        try await old.withExclusiveConnection { connection in
            _ = try await connection.rows(
                """
                INSERT INTO organizations (name, cluster_name, created_at, audiences) VALUES
                    ('org1', 'org1', 0, '["org1", "org1-jupyter", "org1-jupyter"]'), ('org2', 'cluster-two', 0, NULL)
                """)
        }
        try await old.close()
        let store = try await SQLiteStore.open(path: configuration.databasePath, logger: Logger(label: "test"))
        let names = try await store.read { tx in try await tx.audienceNames() }
        try await store.close()
        XCTAssertEqual(names.map(\.name), ["cluster-two", "org1", "org1-jupyter"])
        guard case .organization(_, .cluster) = names[0].holder, case .organization(_, .cluster) = names[1].holder,
            case .organization(_, .policyAudience) = names[2].holder
        else { return XCTFail("\(names)") }
    }

    func testTheMigrationRefusesNamesThatTwoOrganizationsShareAndNamesThem() async throws {
        let old = try await openStore(through: Self.audienceNamesStep.version - 1)
        // Written by an older broker, or by two racing requests.
        try await old.withExclusiveConnection { connection in
            _ = try await connection.rows(
                """
                INSERT INTO organizations (name, cluster_name, created_at, audiences) VALUES
                    ('org1', 'org1', 0, '["org1", "shared"]'), ('org2', 'org2', 0, '["shared", "org1"]')
                """)
        }
        try await old.close()
        do {
            let store = try await SQLiteStore.open(path: configuration.databasePath, logger: Logger(label: "test"))
            try await store.close()
            XCTFail("the migration accepted names shared by two organizations")
        } catch StoreError.engine(let message) {
            XCTAssertTrue(message.contains("org1 (org1, org2)"), message)
            XCTAssertTrue(message.contains("shared (org1, org2)"), message)
        }
        // Nothing changed: the previous version still opens it.
        let again = try await openStore(through: Self.audienceNamesStep.version - 1)
        let versions = try await again.appliedMigrationVersions()
        try await again.close()
        XCTAssertFalse(versions.contains(Self.audienceNamesStep.version))
    }
}
