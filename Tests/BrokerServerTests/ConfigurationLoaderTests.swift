import BrokerCommands
import BrokerCore
import BrokerCrypto
import Foundation
import XCTest

final class ConfigurationLoaderTests: XCTestCase {
    func file(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("broker-config-\(UUID().uuidString).yaml")
        try text.write(to: url, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    func testDefaultsMatchTheDocumentedFile() async throws {
        let loaded = try await ConfigurationLoader(environment: [:]).load(file: nil, flags: [:])
        var defaults = BrokerConfiguration()
        try defaults.validate()
        XCTAssertEqual(loaded, defaults)
        // config/broker.yaml states every default: loading it changes nothing.
        let documented = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("config/broker.yaml").path
        let fromFile = try await ConfigurationLoader(environment: [:]).load(file: documented, flags: [:])
        XCTAssertEqual(fromFile, defaults)
        XCTAssertEqual(defaults.issuer, "http://127.0.0.1:8080")
        XCTAssertEqual(defaults.signingAlgorithm, .rs256)
        XCTAssertEqual(defaults.accessLifetime, 3600)
        XCTAssertEqual(defaults.refreshLifetime, 86400)
        XCTAssertEqual(defaults.sessionMaxLifetime, 604800)
        XCTAssertEqual(defaults.refreshReuseGrace, 2)
        XCTAssertEqual(defaults.argon2.memoryKiB, 19456)
        // Every key is documented in the file.
        let text = try String(contentsOfFile: documented, encoding: .utf8)
        for key in BrokerConfiguration.keys {
            XCTAssertTrue(text.contains("\(key):"), "config/broker.yaml lacks \(key)")
        }
    }

    func testFileThenEnvironmentThenFlags() async throws {
        let path = try file("port: 9001\naccess_lifetime: 600\nsigning_alg: ES256\nissuer: https://login.example.org/\n")
        var loaded = try await ConfigurationLoader(environment: [:]).load(file: path, flags: [:])
        XCTAssertEqual(loaded.port, 9001)
        XCTAssertEqual(loaded.accessLifetime, 600)
        XCTAssertEqual(loaded.signingAlgorithm, .es256)
        XCTAssertEqual(loaded.issuer, "https://login.example.org", "trailing slash removed")
        loaded = try await ConfigurationLoader(environment: ["BROKER_PORT": "9002", "BROKER_SIGNING_ALG": "EdDSA"])
            .load(file: path, flags: [:])
        XCTAssertEqual(loaded.port, 9002)
        XCTAssertEqual(loaded.signingAlgorithm, .edDSA)
        XCTAssertEqual(loaded.accessLifetime, 600)
        loaded = try await ConfigurationLoader(environment: ["BROKER_PORT": "9002", "BROKER_CONFIG": path])
            .load(file: nil, flags: ["port": "9003", "data_dir": "/tmp/x"])
        XCTAssertEqual(loaded.port, 9003)
        XCTAssertEqual(loaded.dataDirectory, "/tmp/x")
        XCTAssertEqual(loaded.accessLifetime, 600, "BROKER_CONFIG names the file")
    }

    func testInvalidValuesAreRefusedWithTheirSource() async throws {
        let cases: [([String: String], String?, String)] = [
            (["BROKER_PORT": "99999"], nil, "BROKER_PORT"),
            (["BROKER_SIGNING_ALG": "HS256"], nil, "RS256, ES256, EdDSA"),
            (["BROKER_ACCESS_LIFETIME": "1.5"], nil, "whole number"),
            ([:], try file("refresh_lifetime: 900000\n"), "session_max_lifetime"),
            ([:], try file("issuer: ftp://x\n"), "issuer"),
            ([:], try file("port: [1, 2]\n"), "port"),
            ([:], try file("- a\n- b\n"), "mapping"),
            ([:], "/nonexistent/broker.yaml", "does not exist"),
        ]
        for (environment, path, expected) in cases {
            do {
                _ = try await ConfigurationLoader(environment: environment).load(file: path, flags: [:])
                XCTFail("accepted \(environment) \(path ?? "")")
            } catch {
                XCTAssertTrue("\(error)".contains(expected), "\(error) lacks \(expected)")
            }
        }
    }
}
