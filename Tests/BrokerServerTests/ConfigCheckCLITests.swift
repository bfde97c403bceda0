import BrokerCore
import Foundation
import XCTest

/// `broker config check`, run as the real binary: every effective setting with the layer it
/// came from, secrets masked, and every invalid setting named with a non-zero exit.
final class ConfigCheckCLITests: XCTestCase {
    struct Line: Equatable {
        var value: String
        var source: String
    }

    /// `key = value  (source)` lines, by key.
    static func settings(_ stdout: String) throws -> [String: Line] {
        var lines: [String: Line] = [:]
        for line in stdout.split(separator: "\n") {
            let match = try XCTUnwrap(line.wholeMatch(of: /(\S+) +=(?: (.*))?  \((.*)\)/), "unexpected line: \(line)")
            lines[String(match.output.1)] = Line(value: String(match.output.2 ?? ""), source: String(match.output.3))
        }
        return lines
    }

    func testEverySettingIsPrintedWithTheLayerItCameFrom() throws {
        var broker = try BrokerBinary.make(extraConfig: "access_lifetime: 1800")
        defer { broker.cleanUp() }
        let file = broker.environment["BROKER_CONFIG"]!
        broker.environment["BROKER_ACCESS_LIFETIME"] = "1200"
        broker.environment["LOG_LEVEL"] = "debug"
        let result = try broker.run(["config", "check", "--port", "9999"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderr, "")
        let settings = try Self.settings(result.stdout)

        XCTAssertEqual(Set(settings.keys), Set(BrokerConfiguration.keys + BrokerConfiguration.structuredKeys), "every key, once")
        XCTAssertEqual(settings["issuer"], Line(value: "http://127.0.0.1:8080", source: "default"))
        XCTAssertEqual(settings["data_dir"], Line(value: broker.workDirectory.path + "/data", source: "file \(file)"))
        XCTAssertEqual(settings["access_lifetime"], Line(value: "1200", source: "environment BROKER_ACCESS_LIFETIME"))
        XCTAssertEqual(settings["log_level"], Line(value: "debug", source: "environment LOG_LEVEL"))
        XCTAssertEqual(settings["port"], Line(value: "9999", source: "flag --port"))
        XCTAssertEqual(settings["bootstrap_admin_password"], Line(value: "\"\"", source: "default"))
        XCTAssertFalse(result.stdout.contains("(not shown)"), "every key has a shown value")
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: broker.workDirectory.appendingPathComponent("data").path),
            "a check opens no database")
    }

    func testSecretsAreMaskedWhereverTheyComeFrom() throws {
        let proxyPassword = "pr0xy-Pa55-7f3a"
        var broker = try BrokerBinary.make(extraConfig: "github_proxy: \"http://alice:\(proxyPassword)@proxy.example:3128/\"")
        defer { broker.cleanUp() }
        let adminPassword = "b00tstrap-Secret-91c2"
        broker.environment["BROKER_BOOTSTRAP_ADMIN_PASSWORD"] = adminPassword
        broker.environment["BROKER_BOOTSTRAP_ADMIN"] = "root"
        let result = try broker.run(["config", "check"])
        XCTAssertEqual(result.status, 0, result.stderr)
        for secret in [proxyPassword, adminPassword] {
            XCTAssertFalse((result.stdout + result.stderr).contains(secret), "\(secret) is never printed")
        }
        let settings = try Self.settings(result.stdout)
        XCTAssertEqual(
            settings["bootstrap_admin_password"], Line(value: "********", source: "environment BROKER_BOOTSTRAP_ADMIN_PASSWORD"))
        XCTAssertEqual(settings["github_proxy"]?.value, "http://alice:********@proxy.example:3128/")
        XCTAssertEqual(settings["bootstrap_admin"]?.value, "root")
        XCTAssertNotEqual(settings["password_hash_concurrency"]?.value, "********", "a count is not a secret")
    }

    func testTheGitHubClientSecretIsMaskedAndItsFileNamed() throws {
        var broker = try BrokerBinary.make(extraConfig: "github_client_id: Iv1.0123abcd")
        defer { broker.cleanUp() }
        let secret = "gh-app-s3cret-88d0"
        broker.environment["BROKER_GITHUB_CLIENT_SECRET"] = secret
        var result = try broker.run(["config", "check"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertFalse((result.stdout + result.stderr).contains(secret), "the secret is never printed")
        var settings = try Self.settings(result.stdout)
        XCTAssertEqual(settings["github_client_secret"], Line(value: "********", source: "environment BROKER_GITHUB_CLIENT_SECRET"))
        XCTAssertEqual(settings["github_client_secret_file"], Line(value: "\"\"", source: "default"))

        // From a file: the path is shown (it is not the secret), the contents never.
        let file = broker.workDirectory.appendingPathComponent("github-secret")
        try (secret + "\n").write(to: file, atomically: true, encoding: .utf8)
        broker.environment["BROKER_GITHUB_CLIENT_SECRET"] = nil
        broker.environment["BROKER_GITHUB_CLIENT_SECRET_FILE"] = file.path
        result = try broker.run(["config", "check"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertFalse((result.stdout + result.stderr).contains(secret))
        settings = try Self.settings(result.stdout)
        XCTAssertEqual(settings["github_client_secret"]?.value, "\"\"")
        XCTAssertEqual(
            settings["github_client_secret_file"], Line(value: file.path, source: "environment BROKER_GITHUB_CLIENT_SECRET_FILE"))

        // Both, and a file that cannot be read: each named, neither secret shown.
        broker.environment["BROKER_GITHUB_CLIENT_SECRET"] = secret
        broker.environment["BROKER_GITHUB_CLIENT_SECRET_FILE"] = file.path + ".missing"
        result = try broker.run(["config", "check"])
        XCTAssertEqual(result.status, 1)
        XCTAssertFalse((result.stdout + result.stderr).contains(secret))
        XCTAssertTrue(result.stderr.contains("github_client_secret and github_client_secret_file are both set"), result.stderr)
        XCTAssertTrue(result.stderr.contains("github_client_secret_file \(file.path).missing cannot be read"), result.stderr)
    }

    func testEveryInvalidSettingIsNamedAndTheExitIsNonZero() throws {
        var broker = try BrokerBinary.make(extraConfig: "log_format: xml")
        defer { broker.cleanUp() }
        broker.environment["BROKER_PORT"] = "eighty"
        broker.environment["BROKER_JWKS_MAX_AGE"] = "9000"
        broker.environment["BROKER_ACESS_LIFETIME"] = "60"
        let result = try broker.run(["config", "check"])
        XCTAssertEqual(result.status, 1)
        let errors = result.stderr.split(separator: "\n").map(String.init)
        XCTAssertEqual(errors.count, 4, result.stderr)
        XCTAssertTrue(errors.allSatisfy { $0.hasPrefix("error: ") }, result.stderr)
        for named in ["BROKER_ACESS_LIFETIME (did you mean BROKER_ACCESS_LIFETIME?)", "environment BROKER_PORT: port",
                      ": log_format must be text or json", "jwks_max_age (9000) must not exceed key_prepublication"] {
            XCTAssertTrue(result.stderr.contains(named), "\(named) in \(result.stderr)")
        }
        // The listing still shows what is in effect: an invalid value leaves the layer below.
        let settings = try Self.settings(result.stdout)
        XCTAssertEqual(settings["port"], Line(value: "8080", source: "default"))
        XCTAssertEqual(settings["log_format"], Line(value: "text", source: "default"))
        XCTAssertEqual(settings["jwks_max_age"], Line(value: "9000", source: "environment BROKER_JWKS_MAX_AGE"))
    }
}
