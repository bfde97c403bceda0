import BrokerCore
import BrokerCrypto
import BrokerSQLite
import BrokerSync
import Foundation
import Logging
import XCTest

/// `signing_alg: Ed25519` in the key ring: a switch between `EdDSA` and `Ed25519` is a switch
/// of algorithm like RS256 → ES256 (a new active and next key, the old keys still published
/// under their own name), in key files and in the database, and rings written with `EdDSA`
/// before `Ed25519` existed load unchanged.
final class Ed25519KeyRingTests: XCTestCase {
    var root: URL!
    var keysPath: String { root.appendingPathComponent("keys").path }
    let clock = ManualWallClock(Date(timeIntervalSince1970: 1_800_000_000))
    let policy = KeyLifecyclePolicy(prepublication: 600, retention: 3630, jwksMaxAge: 300)

    override func setUp() {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("broker-ed25519-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: root)
    }

    func directory() -> KeyDirectory { KeyDirectory(path: keysPath, clock: clock) }

    func kids(_ ring: KeyRingSnapshot, _ state: KeyState, _ algorithm: JWSAlgorithm) -> [String] {
        ring.metadata(state: state, algorithm: algorithm).map(\.kid)
    }

    /// The published JWKS as `kid: alg`.
    func publishedAlgorithms(_ ring: KeyRingSnapshot) throws -> [String: String] {
        let jwks = try JSONDecoder().decode(JWKSet.self, from: Data(ring.jwksJSON))
        return Dictionary(uniqueKeysWithValues: jwks.keys.map { ($0.kid ?? "-", $0.alg ?? "-") })
    }

    // MARK: Key files

    /// What switching does for every pair, checked the same way: the reference RS256 → ES256,
    /// and EdDSA → Ed25519 and back.
    func testSwitchingBetweenTheEd25519NamesWorksAsSwitchingRS256ToES256() throws {
        for (from, to) in [(JWSAlgorithm.rs256, JWSAlgorithm.es256), (.edDSA, .ed25519), (.ed25519, .edDSA)] {
            try? FileManager.default.removeItem(atPath: keysPath)
            let first = try directory().loadOrInitialize(algorithm: from)
            let second = try directory().loadOrInitialize(algorithm: to)
            let what = "\(from.rawValue) → \(to.rawValue)"
            XCTAssertEqual(second.version, first.version + 1, what)
            XCTAssertEqual(kids(second, .active, to).count, 1, what)
            XCTAssertEqual(kids(second, .next, to).count, 1, what)
            XCTAssertEqual(second.activeSigner(for: to)?.kid, kids(second, .active, to).first, what)
            // The keys of the old name are untouched, still published, still under their name.
            XCTAssertEqual(second.keys.filter { $0.metadata.algorithm == from }.map(\.metadata), first.keys.map(\.metadata), what)
            let published = try publishedAlgorithms(second)
            XCTAssertEqual(published.count, 4, what)
            for key in second.keys { XCTAssertEqual(published[key.metadata.kid], key.metadata.algorithm.rawValue, what) }
            // New tokens name the new algorithm and verify under the JWK published for it.
            let token = try XCTUnwrap(second.activeSigner(for: to)).signer.sign(payload: Array(#"{"sub":"a"}"#.utf8))
            let jws = try CompactJWS.parse(token)
            XCTAssertEqual(jws.algorithmName, to.rawValue, what)
            let jwks = try JSONDecoder().decode(JWKSet.self, from: Data(second.jwksJSON))
            XCTAssertTrue(jws.verify(with: try PublicKey(jwk: try XCTUnwrap(jwks.keys.first { $0.kid == jws.keyID }))), what)
            // And back: nothing to add, the old name's active key signs again.
            let back = try directory().loadOrInitialize(algorithm: from)
            XCTAssertEqual(back.version, second.version, what)
            XCTAssertEqual(back.activeSigner(for: from)?.kid, first.activeSigner(for: from)?.kid, what)
            XCTAssertEqual(try publishedAlgorithms(back), published, what)
        }
    }

    /// A keys directory as the broker wrote it before `Ed25519` existed, written out literally:
    /// RFC 8037 A.1's key active and another next, both `EdDSA`.
    func writeEdDSADirectory() throws {
        try FileManager.default.createDirectory(atPath: keysPath, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let files = [
            KeyDirectory.manifestName: Self.edDSAManifest,
            "\(Self.rfc8037Kid).pem": Self.rfc8037PEM,
            "\(Self.nextKid).pem": Self.nextPEM,
        ]
        for (name, text) in files {
            let path = keysPath + "/" + name
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]))
        }
    }

    static let rfc8037Kid = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    static let nextKid = "MIhDen-a5ZKyBezosMALpr5J1mfCH8Zae29xYIlg-Vw"
    static let rfc8037PEM = """
        -----BEGIN PRIVATE KEY-----
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g
        -----END PRIVATE KEY-----

        """
    static let nextPEM = """
        -----BEGIN PRIVATE KEY-----
        MC4CAQAwBQYDK2VwBCIEIL0gK3paRA+3kMBs22AOfI4mVYsdOBp4rg7bHqx6X/kb
        -----END PRIVATE KEY-----

        """
    static let edDSAManifest = """
        {
          "keys" : [
            {
              "activated_at" : 1799990000,
              "alg" : "EdDSA",
              "created_at" : 1799990000,
              "kid" : "\(rfc8037Kid)",
              "signed_lifetimes_recorded" : true,
              "state" : "active"
            },
            {
              "alg" : "EdDSA",
              "created_at" : 1799990000,
              "kid" : "\(nextKid)",
              "signed_lifetimes_recorded" : true,
              "state" : "next"
            }
          ],
          "version" : 3
        }
        """

    func testAnEdDSAKeysDirectoryLoadsUnchangedAndGainsEd25519KeysBeside() throws {
        try writeEdDSADirectory()
        let loaded = try XCTUnwrap(try directory().load())
        XCTAssertEqual(loaded.version, 3)
        XCTAssertEqual(kids(loaded, .active, .edDSA), [Self.rfc8037Kid])
        XCTAssertEqual(kids(loaded, .next, .edDSA), [Self.nextKid])
        XCTAssertNil(loaded.activeSigner(for: .ed25519))
        XCTAssertEqual(try publishedAlgorithms(loaded), [Self.rfc8037Kid: "EdDSA", Self.nextKid: "EdDSA"])
        // Starting with signing_alg EdDSA changes nothing on disk.
        XCTAssertEqual(try directory().loadOrInitialize(algorithm: .edDSA).version, 3)
        XCTAssertEqual(try String(contentsOfFile: keysPath + "/" + KeyDirectory.manifestName, encoding: .utf8), Self.edDSAManifest)

        // signing_alg: Ed25519 adds a pair; the EdDSA keys and their files stay as they were.
        let switched = try directory().loadOrInitialize(algorithm: .ed25519)
        XCTAssertEqual(switched.version, 4)
        XCTAssertEqual(switched.keys.filter { $0.metadata.algorithm == .edDSA }.map(\.metadata), loaded.keys.map(\.metadata))
        XCTAssertEqual(try String(contentsOfFile: keysPath + "/\(Self.rfc8037Kid).pem", encoding: .utf8), Self.rfc8037PEM)
        let manifest = try String(contentsOfFile: keysPath + "/" + KeyDirectory.manifestName, encoding: .utf8)
        XCTAssertEqual(manifest.components(separatedBy: #""alg" : "EdDSA""#).count - 1, 2, manifest)
        XCTAssertEqual(manifest.components(separatedBy: #""alg" : "Ed25519""#).count - 1, 2, manifest)
        let signer = try XCTUnwrap(switched.activeSigner(for: .ed25519))
        XCTAssertNotEqual(signer.kid, Self.rfc8037Kid)
        XCTAssertEqual(try publishedAlgorithms(switched)[signer.kid], "Ed25519")
        XCTAssertEqual(try publishedAlgorithms(switched)[Self.rfc8037Kid], "EdDSA")
        // A restart reads what was written: the same ring.
        let reloaded = try XCTUnwrap(try directory().load())
        XCTAssertEqual(reloaded.keys.map(\.metadata), switched.keys.map(\.metadata))

        // A rotation of Ed25519 touches only the Ed25519 keys.
        clock.advance(by: 600)
        let rotated = try directory().rotate(algorithm: .ed25519, policy: policy, force: false)
        XCTAssertEqual(rotated.keys.filter { $0.metadata.algorithm == .edDSA }.map(\.metadata), loaded.keys.map(\.metadata))
        XCTAssertEqual(kids(rotated, .retired, .ed25519), [signer.kid])
        XCTAssertEqual(kids(rotated, .active, .ed25519), kids(switched, .next, .ed25519))

        // And back to EdDSA: RFC 8037's key signs again, with its RFC 8037 A.4 signature.
        let back = try directory().loadOrInitialize(algorithm: .edDSA)
        XCTAssertEqual(back.version, rotated.version)
        let edSigner = try XCTUnwrap(back.activeSigner(for: .edDSA))
        XCTAssertEqual(edSigner.kid, Self.rfc8037Kid)
        let rfcInput = Array("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc".utf8)
        XCTAssertEqual(
            Base64URL.encode(try edSigner.signer.key.sign(rfcInput)),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
    }

    /// A manifest may not relabel a key file: the PEM is loaded under the manifest's name, so an
    /// `EdDSA` key renamed `Ed25519` in the manifest becomes an `Ed25519` key (same material,
    /// same kid) and its old tokens no longer verify. The names are the operator's, not mixed
    /// up by the broker: it never rewrites an existing key's `alg`.
    func testTheManifestNameIsTheKeysName() throws {
        try writeEdDSADirectory()
        let manifestPath = keysPath + "/" + KeyDirectory.manifestName
        try Self.edDSAManifest.replacingOccurrences(of: #""EdDSA""#, with: #""Ed25519""#)
            .write(toFile: manifestPath, atomically: false, encoding: .utf8)
        let ring = try XCTUnwrap(try directory().load())
        XCTAssertEqual(kids(ring, .active, .ed25519), [Self.rfc8037Kid])
        XCTAssertEqual(try publishedAlgorithms(ring)[Self.rfc8037Kid], "Ed25519")
        XCTAssertNil(ring.activeSigner(for: .edDSA))
    }

    // MARK: The database ring

    func withDatabase(_ body: (SQLiteStore, KeyEncryptionKey) async throws -> Void) async throws {
        let store = try await SQLiteStore.open(path: root.appendingPathComponent("broker.sqlite3").path, logger: Logger(label: "test"))
        let kek = KeyEncryptionKey(key: try SealingKey(bytes: SecureRandom.bytes(32)), file: "/etc/broker/kek")
        do {
            try await body(store, kek)
            try await store.close()
        } catch {
            try await store.close()
            throw error
        }
    }

    /// The stored document's key entries by kid, as JSON objects.
    func storedEntries(_ store: SQLiteStore) async throws -> [String: NSDictionary] {
        let stored = try await XCTUnwrapAsync(try await store.read { tx in try await tx.storedKeyRing() })
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(stored.document)) as? [String: Any])
        let keys = try XCTUnwrap(object["keys"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: keys.map { key in
            (((key["metadata"] as? [String: Any])?["kid"] as? String) ?? "-", key as NSDictionary)
        })
    }

    func testADatabaseRingSwitchesBetweenTheNamesAndKeepsItsEdDSARows() async throws {
        try await withDatabase { store, kek in
            let ring = DatabaseKeyRing(store: store, kek: kek, clock: clock)
            let first = try await ring.loadOrInitializeRing(algorithm: .edDSA)
            let edDSARows = try await storedEntries(store)
            XCTAssertEqual(edDSARows.count, 2)
            for row in edDSARows.values { XCTAssertEqual((row["metadata"] as? [String: Any])?["alg"] as? String, "EdDSA") }

            let switched = try await ring.loadOrInitializeRing(algorithm: .ed25519)
            XCTAssertEqual(switched.version, first.version + 1)
            let rows = try await storedEntries(store)
            XCTAssertEqual(rows.count, 4)
            // Every write seals each key afresh (a new nonce), so the sealed bytes change; what
            // the row says about the key does not, and the key it opens to is the same (its kid).
            for (kid, row) in edDSARows {
                XCTAssertEqual(rows[kid]?["metadata"] as? NSDictionary, row["metadata"] as? NSDictionary, "the EdDSA row of \(kid) changed")
            }
            XCTAssertEqual(
                switched.keys.filter { $0.metadata.algorithm == .edDSA }.map(\.publicKey.thumbprint).sorted(), edDSARows.keys.sorted())
            for kid in kids(switched, .active, .ed25519) + kids(switched, .next, .ed25519) {
                XCTAssertEqual((rows[kid]?["metadata"] as? [String: Any])?["alg"] as? String, "Ed25519")
            }
            // Another replica (a fresh instance on the same database) reads the same ring.
            let replica = try await XCTUnwrapAsync(try await DatabaseKeyRing(store: store, kek: kek, clock: clock).loadRing())
            XCTAssertEqual(replica.keys.map(\.metadata), switched.keys.map(\.metadata))
            XCTAssertEqual(try publishedAlgorithms(replica), try publishedAlgorithms(switched))

            let back = try await ring.loadOrInitializeRing(algorithm: .edDSA)
            XCTAssertEqual(back.version, switched.version, "both names have their pair: nothing to add")
            XCTAssertEqual(back.activeSigner(for: .edDSA)?.kid, first.activeSigner(for: .edDSA)?.kid)
        }
    }

    /// The sealed key is bound to its `alg` (the sealing context names it): an `EdDSA` row
    /// relabelled `Ed25519` in the database does not open, so a database writer cannot make a
    /// key sign or verify under the other name.
    func testAnEdDSARowRelabelledEd25519DoesNotOpen() async throws {
        try await withDatabase { store, kek in
            let ring = DatabaseKeyRing(store: store, kek: kek, clock: clock)
            _ = try await ring.loadOrInitializeRing(algorithm: .edDSA)
            let stored = try await XCTUnwrapAsync(try await store.read { tx in try await tx.storedKeyRing() })
            var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(stored.document)) as? [String: Any])
            var keys = try XCTUnwrap(object["keys"] as? [[String: Any]])
            var metadata = try XCTUnwrap(keys[0]["metadata"] as? [String: Any])
            XCTAssertEqual(metadata["alg"] as? String, "EdDSA")
            metadata["alg"] = "Ed25519"
            keys[0]["metadata"] = metadata
            object["keys"] = keys
            let tampered = StoredKeyRing(
                version: stored.version + 1, document: Array(try JSONSerialization.data(withJSONObject: object)))
            let replaced = try await store.transaction { tx in
                try await tx.replaceStoredKeyRing(tampered, expectedVersion: stored.version)
            }
            XCTAssertTrue(replaced)
            do {
                _ = try await ring.loadRing()
                XCTFail("a relabelled sealed key opened")
            } catch let error as KeyRingError {
                XCTAssertTrue(error.description.contains("does not open"), error.description)
            }
        }
    }
}
