import BrokerCore
import BrokerCrypto
import BrokerSync
import Foundation
import XCTest

final class KeyDirectoryTests: XCTestCase {
    var root: URL!
    var keysPath: String { root.appendingPathComponent("keys").path }

    override func setUp() {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("broker-keys-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: root)
    }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
    }

    func testFirstStartCreatesAnActiveAndANextKeyPrivately() throws {
        let ring = try KeyDirectory(path: keysPath).loadOrInitialize(algorithm: .rs256)
        XCTAssertEqual(ring.keys.map(\.metadata.state).sorted { $0.rawValue < $1.rawValue }, [.active, .next])
        XCTAssertNotNil(ring.activeSigner(for: .rs256))
        XCTAssertEqual(try mode(keysPath), 0o700)
        let files = try FileManager.default.contentsOfDirectory(atPath: keysPath).sorted()
        XCTAssertEqual(files.count, 4, "two keys, the manifest, the lock: \(files)")
        XCTAssertTrue(files.contains(".lock"))
        for file in files {
            XCTAssertEqual(try mode(keysPath + "/" + file), 0o600, file)
        }
        // The JWKS publishes both; kid is the RFC 7638 thumbprint.
        let jwks = try JSONDecoder().decode(JWKSet.self, from: Data(ring.jwksJSON))
        XCTAssertEqual(Set(jwks.keys.compactMap(\.kid)), Set(ring.keys.map(\.metadata.kid)))
        for jwk in jwks.keys {
            XCTAssertEqual(try PublicKey(jwk: jwk).thumbprint, jwk.kid)
            XCTAssertNil(jwk.x, "RSA keys carry n and e")
        }
    }

    func testReloadGivesTheSameRing() throws {
        let first = try KeyDirectory(path: keysPath).loadOrInitialize(algorithm: .es256)
        let again = try KeyDirectory(path: keysPath).loadOrInitialize(algorithm: .es256)
        XCTAssertEqual(first.keys.map(\.metadata), again.keys.map(\.metadata))
        XCTAssertEqual(first.version, again.version)
        let loaded = try XCTUnwrap(try KeyDirectory(path: keysPath).load())
        XCTAssertEqual(loaded.keys.map(\.metadata.kid), first.keys.map(\.metadata.kid))
    }

    func testSwitchingAlgorithmAddsAPairAndKeepsTheOldKeysPublished() throws {
        let first = try KeyDirectory(path: keysPath).loadOrInitialize(algorithm: .rs256)
        let second = try KeyDirectory(path: keysPath).loadOrInitialize(algorithm: .edDSA)
        XCTAssertEqual(second.keys.count, 4)
        XCTAssertNotNil(second.activeSigner(for: .edDSA))
        for key in first.keys { XCTAssertNotNil(second.verificationKey(kid: key.metadata.kid)) }
        XCTAssertEqual(second.version, first.version + 1)
    }

    func testAFreshCheckoutDirectoryIsTightenedAndForeignFilesAreLeftAlone() throws {
        try FileManager.default.createDirectory(atPath: keysPath, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        try "# keys".write(toFile: keysPath + "/README.md", atomically: false, encoding: .utf8)
        try "*".write(toFile: keysPath + "/.gitignore", atomically: false, encoding: .utf8)
        _ = try KeyDirectory(path: keysPath).loadOrInitialize(algorithm: .es256)
        XCTAssertEqual(try mode(keysPath), 0o700)
        XCTAssertEqual(try String(contentsOfFile: keysPath + "/README.md", encoding: .utf8), "# keys")
        XCTAssertNotNil(try KeyDirectory(path: keysPath).load())
    }

    func testLoosePermissionsAreRefused() throws {
        let ring = try KeyDirectory(path: keysPath).loadOrInitialize(algorithm: .es256)
        chmod(keysPath, 0o750)
        XCTAssertThrowsError(try KeyDirectory(path: keysPath).loadOrInitialize(algorithm: .es256)) { error in
            XCTAssertTrue("\(error)".contains("0750") || "\(error)".contains("750"), "\(error)")
        }
        chmod(keysPath, 0o700)
        let keyFile = keysPath + "/\(ring.keys[0].metadata.kid).pem"
        chmod(keyFile, 0o644)
        XCTAssertThrowsError(try KeyDirectory(path: keysPath).load())
        chmod(keyFile, 0o600)
        XCTAssertNoThrow(try KeyDirectory(path: keysPath).load())
    }

    func testCorruptFilesAreRefusedWithAClearMessage() throws {
        let ring = try KeyDirectory(path: keysPath).loadOrInitialize(algorithm: .es256)
        let keyFile = keysPath + "/\(ring.keys[0].metadata.kid).pem"
        let original = try Data(contentsOf: URL(fileURLWithPath: keyFile))
        try Data("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n".utf8).write(to: URL(fileURLWithPath: keyFile))
        XCTAssertThrowsError(try KeyDirectory(path: keysPath).load()) { error in
            XCTAssertTrue("\(error)".contains("corrupt"), "\(error)")
        }
        // Another valid key under this kid's name is also corruption (thumbprint mismatch).
        try Data(try PrivateKey.generate(.es256).pkcs8PEM().utf8).write(to: URL(fileURLWithPath: keyFile))
        XCTAssertThrowsError(try KeyDirectory(path: keysPath).load()) { error in
            XCTAssertTrue("\(error)".contains("thumbprint"), "\(error)")
        }
        try original.write(to: URL(fileURLWithPath: keyFile))
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: keysPath + "/ring.json"))
        XCTAssertThrowsError(try KeyDirectory(path: keysPath).load()) { error in
            XCTAssertTrue("\(error)".contains("corrupt"), "\(error)")
        }
    }

    /// A crash injected at every step of every file write of the first start: the directory is
    /// always one the broker starts from, and it then holds exactly one active and one next key.
    func testACrashAtAnyStepOfInitializationLeavesAStartableDirectory() throws {
        // 3 files (two keys, then the manifest) × every step.
        for writeIndex in 0..<3 {
            for step in SecureFileStep.allCases {
                let path = root.appendingPathComponent("keys-\(writeIndex)-\(step.rawValue)").path
                let writes = Locked(0)
                let crashing = KeyDirectory(path: path) { current in
                    let index = writes.withLock { count -> Int in
                        if current == .afterCreateTemp { count += 1 }
                        return count - 1
                    }
                    if index == writeIndex && current == step { throw InjectedCrash() }
                }
                XCTAssertThrowsError(try crashing.loadOrInitialize(algorithm: .es256), "\(writeIndex) \(step)")
                let restarted = try KeyDirectory(path: path).loadOrInitialize(algorithm: .es256)
                XCTAssertEqual(restarted.metadata(state: .active, algorithm: .es256).count, 1, "\(writeIndex) \(step)")
                XCTAssertEqual(restarted.metadata(state: .next, algorithm: .es256).count, 1, "\(writeIndex) \(step)")
                let leftovers = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.contains(".tmp") }
                XCTAssertEqual(leftovers, [], "\(writeIndex) \(step)")
            }
        }
    }

    struct InjectedCrash: Error {}
}
