import BrokerCore
import BrokerCrypto
import BrokerSQLite
import BrokerSync
import Foundation
import Logging
import XCTest

/// The key ring kept in the database (``DatabaseKeyRing``), on the SQLite store as the test
/// vehicle: several instances on one store stand for replicas that share nothing but the
/// database. Races are made certain, not likely: a ``ReadTogetherStore`` holds every write until
/// each racer has read the ring, so all decide against the same version and all but one lose
/// the compare-and-swap.
final class DatabaseKeyRingTests: XCTestCase {
    var directory: URL!
    var store: SQLiteStore!
    let clock = ManualWallClock()
    let kekBytes = SecureRandom.bytes(32)
    var kek: KeyEncryptionKey { KeyEncryptionKey(key: try! SealingKey(bytes: kekBytes), file: "/etc/broker/kek") }
    let policy = KeyLifecyclePolicy(prepublication: 600, retention: 3630, jwksMaxAge: 300)

    override func setUp() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("broker-dbring-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try await SQLiteStore.open(path: directory.appendingPathComponent("broker.sqlite3").path, logger: Logger(label: "test"))
    }

    override func tearDown() async throws {
        try await store.close()
        try? FileManager.default.removeItem(at: directory)
    }

    func ring(_ store: (any Store)? = nil, kek: KeyEncryptionKey? = nil) -> DatabaseKeyRing {
        DatabaseKeyRing(store: store ?? self.store, kek: kek ?? self.kek, clock: clock)
    }

    func kids(_ ring: KeyRingSnapshot, _ state: KeyState) -> [String] {
        ring.keys.filter { $0.metadata.state == state }.map(\.metadata.kid).sorted()
    }

    // MARK: The store's compare-and-swap

    func testTheStoreSwapsOnlyFromTheExpectedVersion() async throws {
        let first = StoredKeyRing(version: 1, document: Array("one".utf8))
        let second = StoredKeyRing(version: 2, document: Array("two".utf8))
        let results = try await store.transaction { tx in
            [
                try await tx.replaceStoredKeyRing(first, expectedVersion: nil),
                try await tx.replaceStoredKeyRing(second, expectedVersion: nil),
                try await tx.replaceStoredKeyRing(second, expectedVersion: 7),
            ]
        }
        XCTAssertEqual(results, [true, false, false], "one insert; another insert or a stale version changes nothing")
        let stored = try await store.read { tx in try await tx.storedKeyRing() }
        XCTAssertEqual(stored, first)
        let swapped = try await store.transaction { tx in try await tx.replaceStoredKeyRing(second, expectedVersion: 1) }
        XCTAssertTrue(swapped)
        let after = try await store.read { tx in try await tx.storedKeyRing() }
        XCTAssertEqual(after, second)
    }

    // MARK: Races

    func testReplicasStartingAtOnceOnAnEmptyDatabaseCreateExactlyOneRing() async throws {
        let replicas = 5
        let racing = ReadTogetherStore(store, readers: replicas)
        let racers = (0..<replicas).map { _ in ring(racing) }
        let rings = try await withThrowingTaskGroup(of: KeyRingSnapshot.self) { group in
            for racer in racers {
                group.addTask { try await racer.loadOrInitializeRing(algorithm: .es256) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(racing.writes, replicas, "every replica tried to create the ring")
        let stored = try await XCTUnwrapAsync(try await ring().loadRing())
        XCTAssertEqual(stored.version, 1, "one ring was stored, never replaced")
        XCTAssertEqual(stored.keys.count, 2, "one active and one next key")
        for ring in rings {
            XCTAssertEqual(ring.version, stored.version)
            XCTAssertEqual(kids(ring, .active), kids(stored, .active), "every replica signs with the one active key")
            XCTAssertEqual(kids(ring, .next), kids(stored, .next))
        }
    }

    func testRotationsRacingWithAScheduledRotationMakeOneNewKeyAndEveryReplicaConverges() async throws {
        let scheduled = KeyLifecyclePolicy(prepublication: 600, retention: 3630, jwksMaxAge: 300, rotationPeriod: 600)
        let initial = try await ring().loadOrInitializeRing(algorithm: .es256)
        // Three replicas, each with its own live ring and maintenance; the third rotates on schedule.
        let live = (0..<3).map { _ in KeyRing(initial) }
        var tokens: [String] = []
        for replica in live { tokens.append(try sign(with: replica)) }

        clock.advance(by: 600)
        // Every racer reads the ring before any writes: two CLIs rotating (one read each) and the
        // schedule (its version check and its own read).
        let racing = ReadTogetherStore(store, readers: 4)
        let maintenance = (0..<3).map { index in
            KeyRingMaintenance(
                storage: ring(index == 2 ? racing : store), ring: live[index], algorithm: .es256,
                policy: index == 2 ? scheduled : policy, clock: clock, logger: Logger(label: "test"), signedLifetimes: nil)
        }
        let (cliA, cliB, rules) = (ring(racing), ring(racing), policy)
        async let first = Self.outcome { try await cliA.rotateRing(algorithm: .es256, policy: rules, force: false) }
        async let second = Self.outcome { try await cliB.rotateRing(algorithm: .es256, policy: rules, force: false) }
        async let tick: Void = maintenance[2].tick()
        let outcomes = await [first, second]
        try await tick

        let stored = try await XCTUnwrapAsync(try await ring().loadRing())
        XCTAssertEqual(stored.version, 2, "exactly one change was stored")
        XCTAssertEqual(stored.keys.count, 3, "one new key, not two or three: retired, active, next")
        XCTAssertEqual(kids(stored, .retired), kids(initial, .active))
        XCTAssertEqual(kids(stored, .active), kids(initial, .next))
        XCTAssertLessThanOrEqual(outcomes.filter { $0 == nil }.count, 1, "at most one CLI rotation succeeded")
        for failure in outcomes.compactMap({ $0 }) {
            XCTAssertTrue(failure.contains("may not have it before"), "a loser re-decided against the new ring: \(failure)")
        }

        // Until a replica polls, it signs with the key it had; every such token stays valid.
        for replica in live { tokens.append(try sign(with: replica)) }
        for replica in maintenance { try await replica.tick() }
        for replica in live {
            XCTAssertEqual(replica.snapshot.version, stored.version, "converged after one reload")
            XCTAssertEqual(replica.snapshot.activeSigner(for: .es256)?.kid, kids(stored, .active).first)
            tokens.append(try sign(with: replica))
        }
        let published = try JSONDecoder().decode(JWKSet.self, from: Data(stored.jwksJSON))
        for token in tokens {
            let jws = try CompactJWS.parse(token)
            let jwk = try XCTUnwrap(published.keys.first { $0.kid == jws.keyID }, "signed by a published key")
            XCTAssertTrue(jws.verify(with: try PublicKey(jwk: jwk)))
        }
    }

    func testAReplicaSignsWithANewlyActivatedKeyAfterItsNextPoll() async throws {
        let initial = try await ring().loadOrInitializeRing(algorithm: .es256)
        let live = KeyRing(initial)
        let maintenance = KeyRingMaintenance(
            storage: ring(), ring: live, algorithm: .es256, policy: policy, clock: clock, logger: Logger(label: "test"),
            signedLifetimes: nil)
        clock.advance(by: 600)
        let rotated = try await ring().rotateRing(algorithm: .es256, policy: policy, force: false)
        XCTAssertEqual(live.snapshot.activeSigner(for: .es256)?.kid, kids(initial, .active).first, "not polled yet")
        try await maintenance.tick()
        XCTAssertEqual(live.snapshot.activeSigner(for: .es256)?.kid, kids(rotated, .active).first)
    }

    func testPruningAndRetirementAreAppliedOnceToTheSharedRing() async throws {
        let initial = try await ring().loadOrInitializeRing(algorithm: .es256)
        clock.advance(by: 600)
        _ = try await ring().rotateRing(algorithm: .es256, policy: policy, force: false)
        clock.advance(by: 3630)
        let pruned = try await XCTUnwrapAsync(try await ring().pruneRing(policy: policy, signed: .unknown))
        XCTAssertFalse(pruned.keys.contains { $0.metadata.kid == kids(initial, .active).first })
        let again = try await ring().pruneRing(policy: policy, signed: .unknown)
        XCTAssertEqual(again?.version, pruned.version, "nothing more due: nothing stored")
        let active = try XCTUnwrap(kids(pruned, .active).first)
        let retired = try await ring().retireKeyNow(kid: active, policy: policy)
        XCTAssertFalse(retired.keys.contains { $0.metadata.kid == active })
        XCTAssertEqual(kids(retired, .active), kids(pruned, .next), "the next key took over at once")
    }

    // MARK: Sealing

    func testTheDatabaseNeverHoldsAPrivateKeyOrSecretInClear() async throws {
        for algorithm in [JWSAlgorithm.es256, .edDSA, .rs256] {
            _ = try await ring().loadOrInitializeRing(algorithm: algorithm)
        }
        let secret = try await ring().serverSecret(named: RefreshTokenRotation.secretName, store: store)
        let snapshot = try await XCTUnwrapAsync(try await ring().loadRing())
        let stored = try await XCTUnwrapAsync(try await store.read { tx in try await tx.storedKeyRing() })
        let document = stored.document
        let text = String(decoding: document, as: UTF8.self)
        XCTAssertFalse(text.contains("PRIVATE KEY"))
        XCTAssertFalse(text.contains("BEGIN"))
        // Every byte string the document carries, decoded: the sealed values.
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(document)) as? [String: Any])
        let keys = try XCTUnwrap(object["keys"] as? [[String: Any]])
        let secrets = try XCTUnwrap(object["secrets"] as? [String: String])
        var sealed = keys.compactMap { $0["sealed_private_key"] as? String }
        sealed += secrets.values
        XCTAssertEqual(sealed.count, 6 + 1)
        let decoded = sealed.compactMap { Data(base64Encoded: $0).map(Array.init) }
        XCTAssertEqual(decoded.count, sealed.count)
        for key in snapshot.keys {
            let pem = try key.privateKey.pkcs8PEM()
            let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }
            let der = try XCTUnwrap(Data(base64Encoded: body.joined()).map(Array.init))
            for line in body { XCTAssertFalse(text.contains(line), "a line of the PEM of \(key.metadata.kid)") }
            // The last 32 bytes of PKCS#8 DER hold (or end) the private scalar or exponent data.
            let tail = Array(der.suffix(32))
            XCTAssertFalse(contains(document, tail), "private key bytes in the document")
            for value in decoded { XCTAssertFalse(contains(value, tail), "private key bytes in a sealed value") }
        }
        XCTAssertFalse(contains(document, secret))
        XCTAssertFalse(text.contains(Data(secret).base64EncodedString()))
        for value in decoded { XCTAssertFalse(contains(value, secret)) }
        XCTAssertEqual(object["kek_id"] as? String, kek.identifier, "the KEK's identifier, never the KEK")
        XCTAssertFalse(contains(document, kekBytes))
        XCTAssertFalse(text.contains(Data(kekBytes).base64EncodedString()))
    }

    func testAWrongKEKIsRefusedWithAMessageNamingBothKeys() async throws {
        _ = try await ring().loadOrInitializeRing(algorithm: .es256)
        let other = KeyEncryptionKey(key: SealingKey.random(), file: "/etc/broker/other-kek")
        do {
            _ = try await ring(kek: other).loadRing()
            XCTFail("a ring sealed under another KEK was opened")
        } catch let error as KeyRingError {
            XCTAssertEqual(
                error.description,
                "the key-encryption key in /etc/broker/other-kek is not the one the key ring was sealed with "
                    + "(ring sealed under KEK id \(kek.identifier), this file is \(other.identifier))")
        }
        // A replica started with it refuses to start: it cannot even initialize.
        await XCTAssertThrowsErrorAsync(try await self.ring(kek: other).loadOrInitializeRing(algorithm: .es256))
    }

    func testASealedKeyMovedIntoAnotherKeysPlaceDoesNotOpen() async throws {
        _ = try await ring().loadOrInitializeRing(algorithm: .es256)
        let stored = try await XCTUnwrapAsync(try await store.read { tx in try await tx.storedKeyRing() })
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(stored.document)) as? [String: Any])
        var keys = try XCTUnwrap(object["keys"] as? [[String: Any]])
        let swapped = keys[0]["sealed_private_key"]
        keys[0]["sealed_private_key"] = keys[1]["sealed_private_key"]
        keys[1]["sealed_private_key"] = swapped
        object["keys"] = keys
        let tampered = StoredKeyRing(version: 2, document: Array(try JSONSerialization.data(withJSONObject: object)))
        let replaced = try await store.transaction { tx in try await tx.replaceStoredKeyRing(tampered, expectedVersion: 1) }
        XCTAssertTrue(replaced)
        do {
            _ = try await ring().loadRing()
            XCTFail("a swapped sealed key opened")
        } catch let error as KeyRingError {
            XCTAssertTrue(error.description.contains("does not open"), error.description)
        }
    }

    func testADatabaseRingWithoutAKEKIsAClearConfigurationError() throws {
        var configuration = BrokerConfiguration()
        configuration.keyEncryptionKeyFile = ""
        XCTAssertThrowsError(try KeyRingPlacement.database.storage(configuration: configuration, store: store)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("key_encryption_key_file"), message)
            XCTAssertTrue(message.contains("BROKER_KEY_ENCRYPTION_KEY_FILE"), message)
        }
        configuration.keyEncryptionKeyFile = directory.appendingPathComponent("absent").path
        XCTAssertThrowsError(try KeyRingPlacement.database.storage(configuration: configuration, store: store)) { error in
            XCTAssertTrue("\(error)".contains("does not exist"), "\(error)")
        }
        // The files need none.
        XCTAssertTrue(try KeyRingPlacement.keysDirectory.storage(configuration: configuration, store: store) is KeyDirectory)
    }

    // MARK: Server secrets

    func testServerSecretsAreSealedInTheRingAndCreatedOnceAcrossReplicas() async throws {
        let replicas = 4
        let racing = ReadTogetherStore(store, readers: replicas)
        let racers = (0..<replicas).map { _ in ring(racing) }
        let secrets = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for racer in racers {
                group.addTask { try await racer.serverSecret(named: RefreshTokenRotation.secretName, store: racing) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(Set(secrets.map { Data($0) }).count, 1, "one secret for every replica")
        XCTAssertEqual(secrets[0].count, 32)
        let inClear = try await store.read { tx in try await tx.serverSecret(named: RefreshTokenRotation.secretName) }
        XCTAssertNil(inClear, "not in server_secrets, where it would be in clear")
        // The ring created later keeps the secret.
        _ = try await ring().loadOrInitializeRing(algorithm: .es256)
        let again = try await ring().serverSecret(named: RefreshTokenRotation.secretName, store: store)
        XCTAssertEqual(again, secrets[0])
    }

    func testServicesOnADatabaseRingTakeTheirSecretsFromIt() async throws {
        var configuration = BrokerConfiguration()
        configuration.dataDirectory = directory.path
        configuration.keysDirectory = directory.appendingPathComponent("keys-unused").path
        configuration.auditLog = directory.appendingPathComponent("audit.log").path
        configuration.argon2 = CoreHarness.cheapArgon2
        configuration.signingAlgorithm = .es256
        let storage = ring()
        let keyRing = KeyRing(try await storage.loadOrInitializeRing(algorithm: .es256))
        let services = try await BrokerServices(
            configuration: configuration, store: store, keyRing: keyRing, clock: clock, keyStorage: storage)
        try await services.start()
        XCTAssertFalse(FileManager.default.fileExists(atPath: configuration.keysDirectory), "no key file anywhere")
        for name in [RefreshTokenRotation.secretName, AttemptedUsernames.secretName] {
            let inClear = try await store.read { tx in try await tx.serverSecret(named: name) }
            XCTAssertNil(inClear, name)
        }
        let sealed = try await storage.serverSecret(named: AttemptedUsernames.secretName, store: store)
        XCTAssertEqual(
            services.attemptedUsernames.pseudonym("typo"),
            AttemptedUsernames(store: store, key: sealed).pseudonym("typo"))
        // The admin API rotates the shared ring.
        clock.advance(by: 600)
        let rotated = try await services.keys.rotate(force: false, by: .operator)
        let stored = try await XCTUnwrapAsync(try await storage.loadRing())
        XCTAssertEqual(rotated.version, stored.version)
        try await services.passwords.shutdown()
        await services.audit.close()
    }

    // MARK: Rewrap

    func testRewrapReSealsEverythingUnderTheNewKEKInOneChange() async throws {
        let before = try await ring().loadOrInitializeRing(algorithm: .es256)
        let secret = try await ring().serverSecret(named: "audit_username_hmac", store: store)
        let newKEK = KeyEncryptionKey(key: SealingKey.random(), file: "/etc/broker/kek-2026")
        let rewrapped = try await KeyRingRewrap.rewrap(ring(), to: newKEK)
        XCTAssertEqual(rewrapped.kek.identifier, newKEK.identifier)
        let after = try await XCTUnwrapAsync(try await ring(kek: newKEK).loadRing())
        XCTAssertEqual(after.version, before.version + 2, "the secret's creation, then the rewrap")
        XCTAssertEqual(after.keys.map(\.metadata), before.keys.map(\.metadata), "the same keys in the same states")
        XCTAssertEqual(after.jwksJSON, before.jwksJSON)
        let reopened = try await ring(kek: newKEK).serverSecret(named: "audit_username_hmac", store: store)
        XCTAssertEqual(reopened, secret)
        do {
            _ = try await ring().loadRing()
            XCTFail("the old KEK still opens the ring")
        } catch let error as KeyRingError {
            XCTAssertTrue(error.description.contains("ring sealed under KEK id \(newKEK.identifier)"), error.description)
        }
    }

    func testRewrapRefusesARingInFiles() async throws {
        let files = KeyDirectory(path: directory.appendingPathComponent("keys").path, clock: clock)
        _ = try files.loadOrInitialize(algorithm: .es256)
        do {
            _ = try await KeyRingRewrap.rewrap(files, to: kek)
            XCTFail("rewrapped a ring in files")
        } catch let error as KeyRingError {
            XCTAssertTrue(error.description.contains("applies to a key ring kept in the database"), error.description)
            XCTAssertTrue(error.description.contains("keys_dir \(files.path)"), error.description)
        }
    }

    // MARK: Moving a single-node installation

    func testASingleNodeRingAndItsSecretsAreAdoptedSealedOnce() async throws {
        let files = KeyDirectory(path: directory.appendingPathComponent("keys").path, clock: clock)
        let snapshot = try files.loadOrInitialize(algorithm: .es256)
        let secret = try await files.serverSecret(named: RefreshTokenRotation.secretName, store: store)
        let adopted = try await ring().adopt(snapshot, secrets: [RefreshTokenRotation.secretName: secret])
        XCTAssertTrue(adopted)
        let loaded = try await XCTUnwrapAsync(try await ring().loadRing())
        XCTAssertEqual(loaded.keys.map(\.metadata), snapshot.keys.map(\.metadata))
        XCTAssertEqual(loaded.jwksJSON, snapshot.jwksJSON, "gateways see the same keys")
        let shared = try await ring().serverSecret(named: RefreshTokenRotation.secretName, store: store)
        XCTAssertEqual(shared, secret, "refresh tokens' successors are derived alike")
        let again = try await ring().adopt(try files.rotate(algorithm: .es256, policy: policy, force: true), secrets: [:])
        XCTAssertFalse(again, "a ring already in the database is never overwritten")
        let unchanged = try await XCTUnwrapAsync(try await ring().loadRing())
        XCTAssertEqual(unchanged.version, loaded.version)
    }

    // MARK: Helpers

    func sign(with ring: KeyRing) throws -> String {
        let signer = try XCTUnwrap(ring.snapshot.activeSigner(for: .es256))
        return try signer.signer.sign(payload: Array(#"{"sub":"alice"}"#.utf8))
    }

    /// nil on success, else the error's text.
    static func outcome(_ body: @Sendable () async throws -> KeyRingSnapshot) async -> String? {
        do {
            _ = try await body()
            return nil
        } catch {
            return "\(error)"
        }
    }

    func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { start in
            haystack[start..<(start + needle.count)].elementsEqual(needle)
        }
    }
}

/// A store whose writes wait until `readers` reads have been made: every racer then decides
/// against the same ring, and the compare-and-swap alone decides who wins.
final class ReadTogetherStore: Store {
    let base: any Store
    private let state = Locked<(reads: Int, writes: Int, waiting: [CheckedContinuation<Void, Never>])>((0, 0, []))
    private let readers: Int

    init(_ base: any Store, readers: Int) {
        self.base = base
        self.readers = readers
    }

    var writes: Int { state.withLock { $0.writes } }

    func transaction<T: Sendable>(_ body: @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                state.writes += 1
                if state.reads >= readers { return true }
                state.waiting.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
        return try await base.transaction(body)
    }

    func read<T: Sendable>(_ body: @Sendable (any StoreTransaction) async throws -> T) async throws -> T {
        let result = try await base.read(body)
        let released = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.reads += 1
            guard state.reads >= readers else { return [] }
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in released { continuation.resume() }
        return result
    }

    var isSharedByReplicas: Bool { base.isSharedByReplicas }

    func close() async throws {}
}

func XCTAssertThrowsErrorAsync<T>(
    _ body: @autoclosure () async throws -> T, file: StaticString = #filePath, line: UInt = #line
) async {
    do {
        _ = try await body()
        XCTFail("no error thrown", file: file, line: line)
    } catch {}
}
