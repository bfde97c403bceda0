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
        loaded = try await ConfigurationLoader(environment: ["BROKER_SIGNING_ALG": "Ed25519"]).load(file: path, flags: [:])
        XCTAssertEqual(loaded.signingAlgorithm, .ed25519)
        loaded = try await ConfigurationLoader(environment: [:]).load(file: try file("signing_alg: Ed25519\n"), flags: [:])
        XCTAssertEqual(loaded.signingAlgorithm, .ed25519)
        loaded = try await ConfigurationLoader(environment: ["BROKER_PORT": "9002", "BROKER_CONFIG": path])
            .load(file: nil, flags: ["port": "9003", "data_dir": "/tmp/x"])
        XCTAssertEqual(loaded.port, 9003)
        XCTAssertEqual(loaded.dataDirectory, "/tmp/x")
        XCTAssertEqual(loaded.accessLifetime, 600, "BROKER_CONFIG names the file")
    }

    func testInvalidValuesAreRefusedWithTheirSource() async throws {
        let cases: [([String: String], String?, String)] = [
            (["BROKER_PORT": "99999"], nil, "BROKER_PORT"),
            (["BROKER_SIGNING_ALG": "HS256"], nil, "RS256, ES256, EdDSA, Ed25519"),
            // The JOSE names are case-sensitive (RFC 7515 4.1.1): another spelling is refused.
            (["BROKER_SIGNING_ALG": "ed25519"], nil, "RS256, ES256, EdDSA, Ed25519"),
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

    func testAMetricsListenerOfItsOwn() async throws {
        var loaded = try await ConfigurationLoader(environment: [:]).load(file: nil, flags: [:])
        XCTAssertNil(loaded.metricsPort, "by default /metrics is on the public listener")
        loaded = try await ConfigurationLoader(environment: [:]).load(file: try file("metrics_port: 9091\n"), flags: [:])
        XCTAssertEqual(loaded.metricsPort, 9091)
        XCTAssertEqual(loaded.metricsListenHost, "127.0.0.1", "loopback unless metrics_host says otherwise")
        loaded = try await ConfigurationLoader(environment: ["BROKER_METRICS_PORT": "9092", "BROKER_METRICS_HOST": "10.1.2.3"])
            .load(file: try file("metrics_port: 9091\n"), flags: [:])
        XCTAssertEqual(loaded.metricsPort, 9092)
        XCTAssertEqual(loaded.metricsListenHost, "10.1.2.3")
        let refused: [(String, String)] = [
            ("metrics_host: 0.0.0.0\n", "metrics_host needs metrics_port"),
            ("metrics_port: 70000\n", "metrics_port must be a port number"),
            ("metrics_port: 8080\n", "is the public listener"),
            ("metrics_port: 9091\nmetrics_host: \"\"\n", "metrics_host must not be empty"),
        ]
        for (text, expected) in refused {
            do {
                _ = try await ConfigurationLoader(environment: [:]).load(file: try file(text), flags: [:])
                XCTFail("accepted \(text)")
            } catch {
                XCTAssertTrue("\(error)".contains(expected), "\(error) lacks \(expected)")
            }
        }
    }

    func testLogLevelFromLOG_LEVELBelowBROKER_LOG_LEVEL() async throws {
        var loaded = try await ConfigurationLoader(environment: ["LOG_LEVEL": "debug"]).load(file: nil, flags: [:])
        XCTAssertEqual(loaded.logLevel, "debug")
        loaded = try await ConfigurationLoader(environment: ["LOG_LEVEL": "debug", "BROKER_LOG_LEVEL": "error"]).load(file: nil, flags: [:])
        XCTAssertEqual(loaded.logLevel, "error")
        let gateway = try ConfigurationLoader(environment: ["LOG_LEVEL": "debug", "BROKER_LOG_FORMAT": "json"])
            .loadLogging(flags: [:])
        XCTAssertEqual(gateway.level, "debug")
        XCTAssertEqual(gateway.format, "json")
        XCTAssertEqual(
            try ConfigurationLoader(environment: ["BROKER_LOG_LEVEL": "error"]).loadLogging(flags: ["log_level": "trace"]).level,
            "trace", "a flag wins")
        XCTAssertThrowsError(try ConfigurationLoader(environment: ["LOG_LEVEL": "verbose"]).loadLogging(flags: [:])) { error in
            XCTAssertTrue("\(error)".contains("environment LOG_LEVEL"), "\(error)")
        }
    }

    func testGitHubOrganizationMappingsFromFileAndEnvironment() async throws {
        let path = try file("""
            github_orgs:
              sliderule:
                github_org: SlideRuleEarth
                teams:
                  Developers: sliderule-dev
              lab:
                github_org: TheLab
                admit_members: false
                teams: {ops: lab-ops}
            """)
        var loaded = try await ConfigurationLoader(environment: [:]).load(file: path, flags: [:])
        XCTAssertEqual(loaded.githubOrganizations, [
            GitHubOrganizationMapping(organization: "lab", githubOrganization: "TheLab", admitMembers: false, teams: ["ops": "lab-ops"]),
            GitHubOrganizationMapping(organization: "sliderule", githubOrganization: "SlideRuleEarth", teams: ["developers": "sliderule-dev"]),
        ])
        loaded = try await ConfigurationLoader(environment: ["BROKER_GITHUB_ORGS": #"{"x": {"github_org": "X"}}"#])
            .load(file: path, flags: [:])
        XCTAssertEqual(loaded.githubOrganizations, [GitHubOrganizationMapping(organization: "x", githubOrganization: "X")])

        let refused: [(String, String)] = [
            ("github_orgs:\n  a: {github_org: A, teams: {t: shared}}\n  b: {github_org: B, teams: {u: shared}}\n", "shared"),
            ("github_orgs:\n  a: {teams: {t: c}}\n", "github_org"),
            ("github_orgs:\n  a: {github_org: A, admit_members: maybe}\n", "admit_members"),
            ("github_orgs:\n  a: {github_org: A, extra: 1}\n", "unknown key extra"),
            ("github_orgs: [a, b]\n", "mapping"),
        ]
        for (text, expected) in refused {
            do {
                _ = try await ConfigurationLoader(environment: [:]).load(file: try file(text), flags: [:])
                XCTFail("accepted \(text)")
            } catch {
                XCTAssertTrue("\(error)".contains(expected), "\(error) lacks \(expected)")
            }
        }
    }

    func testTheGitHubClientSecretIsGivenOrReadFromAFile() async throws {
        let defaults = try await ConfigurationLoader(environment: [:]).load(file: nil, flags: [:])
        XCTAssertEqual(try defaults.githubClientSecretValue(), "")
        XCTAssertFalse(defaults.githubWebFlowEnabled)
        let idOnly = try await ConfigurationLoader(environment: ["BROKER_GITHUB_CLIENT_ID": "Iv1.abc"]).load(file: nil, flags: [:])
        XCTAssertFalse(idOnly.githubWebFlowEnabled, "the device flow needs no secret; the web flow does")

        let given = try await ConfigurationLoader(
            environment: ["BROKER_GITHUB_CLIENT_ID": "Iv1.abc", "BROKER_GITHUB_CLIENT_SECRET": "g1ven-s3cret"]
        ).load(file: nil, flags: [:])
        XCTAssertEqual(try given.githubClientSecretValue(), "g1ven-s3cret")
        XCTAssertTrue(given.githubWebFlowEnabled)

        // The file's first line; the newline an editor or echo adds is not part of it.
        let secretFile = try file("f1le-s3cret\r\nsecond line\n")
        let fromFile = try await ConfigurationLoader(environment: ["BROKER_GITHUB_CLIENT_SECRET_FILE": secretFile])
            .load(file: try file("github_client_id: Iv1.abc\n"), flags: [:])
        XCTAssertEqual(fromFile.githubClientSecret, "", "read when asked (at start), not kept in the configuration")
        XCTAssertEqual(fromFile.githubClientSecretFile, secretFile)
        XCTAssertTrue(fromFile.githubWebFlowEnabled)
        XCTAssertEqual(try fromFile.githubClientSecretValue(), "f1le-s3cret")

        var unreadable = fromFile
        unreadable.githubClientSecretFile = "/nonexistent/github-secret"
        XCTAssertThrowsError(try unreadable.githubClientSecretValue()) { error in
            XCTAssertEqual("\(error)", "github_client_secret_file /nonexistent/github-secret cannot be read")
        }
        var empty = fromFile
        empty.githubClientSecretFile = try file("\n")
        XCTAssertThrowsError(try empty.githubClientSecretValue()) { error in
            XCTAssertEqual("\(error)", "github_client_secret_file \(empty.githubClientSecretFile) is empty")
        }

        let refused: [([String: String], String)] = [
            (
                ["BROKER_GITHUB_CLIENT_ID": "Iv1.abc", "BROKER_GITHUB_CLIENT_SECRET": "b0th-s3cret",
                 "BROKER_GITHUB_CLIENT_SECRET_FILE": secretFile],
                "github_client_secret and github_client_secret_file are both set"
            ),
            (["BROKER_GITHUB_CLIENT_SECRET": "n0-id-s3cret"], "github_client_id is empty"),
            (["BROKER_GITHUB_CLIENT_SECRET_FILE": secretFile], "github_client_id is empty"),
        ]
        for (environment, expected) in refused {
            do {
                _ = try await ConfigurationLoader(environment: environment).load(file: nil, flags: [:])
                XCTFail("accepted \(environment)")
            } catch {
                XCTAssertTrue("\(error)".contains(expected), "\(error) lacks \(expected)")
                XCTAssertFalse("\(error)".contains("s3cret"), "\(error)")
            }
        }
    }

    func testMappingsMustNameExistingOrganizationsAndFreeClusterNames() throws {
        let organizations = [
            Organization(id: 1, name: "a", clusterName: "a", createdAt: Date()),
            Organization(id: 2, name: "b", clusterName: "b-cluster", createdAt: Date()),
        ]
        XCTAssertNoThrow(try [GitHubOrganizationMapping(organization: "a", githubOrganization: "A", teams: ["t": "a-team"])]
            .validate(against: organizations))
        XCTAssertThrowsError(try [GitHubOrganizationMapping(organization: "c", githubOrganization: "C")].validate(against: organizations))
        XCTAssertThrowsError(
            try [GitHubOrganizationMapping(organization: "a", githubOrganization: "A", teams: ["t": "b-cluster"])]
                .validate(against: organizations))
    }

    /// `provisioner_url` is read like the other URL keys and checked at start: a malformed one
    /// stops the broker rather than answering 502 to every scaling call.
    func testTheProvisionerURLIsCheckedAtStart() async throws {
        var loaded = try await ConfigurationLoader(environment: [:]).load(file: nil, flags: [:])
        XCTAssertEqual(loaded.provisionerURL, "", "unset: scaling calls are answered 501")
        XCTAssertEqual(loaded.provisionerTimeout, 10)
        loaded = try await ConfigurationLoader(
            environment: ["BROKER_PROVISIONER_URL": "http://10.0.0.5:8000/ps/", "BROKER_PROVISIONER_TIMEOUT": "3"]
        ).load(file: try file("provisioner_url: https://ps-internal.example.org\n"), flags: [:])
        XCTAssertEqual(loaded.provisionerURL, "http://10.0.0.5:8000/ps/", "the environment over the file")
        XCTAssertEqual(loaded.provisionerTimeout, 3)
        loaded = try await ConfigurationLoader(environment: [:])
            .load(file: try file("provisioner_url: https://[::1]:9443\n"), flags: [:])
        XCTAssertEqual(loaded.provisionerURL, "https://[::1]:9443")

        for bad in [
            "ftp://ps.example.org", "ps.example.org", "/api", "http://", "https:///ps", "https://ps.example.org/?x=1",
            "https://ps.example.org/#top", "http://admin:secret@ps.example.org/", "http://ps example.org/",
        ] {
            do {
                _ = try await ConfigurationLoader(environment: ["BROKER_PROVISIONER_URL": bad]).load(file: nil, flags: [:])
                XCTFail("accepted \(bad)")
            } catch {
                XCTAssertTrue("\(error)".contains("provisioner_url"), "\(bad): \(error)")
            }
        }
        for bad in ["0", "301", "1.5", "ten"] {
            do {
                _ = try await ConfigurationLoader(environment: ["BROKER_PROVISIONER_TIMEOUT": bad]).load(file: nil, flags: [:])
                XCTFail("accepted provisioner_timeout \(bad)")
            } catch {
                XCTAssertTrue("\(error)".contains("BROKER_PROVISIONER_TIMEOUT"), "\(bad): \(error)")
            }
        }
    }
}
