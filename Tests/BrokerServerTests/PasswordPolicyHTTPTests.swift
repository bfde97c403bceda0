import BrokerCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// Issue 10.8: what a login refuses cannot be set as a password by any path. Over real HTTP for
/// the admin API and the logins, through the real binary for the CLI, and at bootstrap.
final class PasswordPolicyHTTPTests: XCTestCase {
    /// Each accepted by the old setter rule (12+ code points, no NUL) and refused by every login
    /// with 400, because JSON string members must not contain control characters.
    static let unusable = [
        "tab\tseparated pass", "line one\nline two", "carriage\rreturn pass", "delete\u{7F}character",
        "next line\u{85}C1 control", "escape\u{1B}[31m red pass",
    ]
    /// Unusual but usable: each can be set and then logs in.
    static let usable = [
        " spaces at both ends ", "line\u{2028}separator pass", "zero\u{200D}width joiner", "emoji 🔑🔑🔑 passphrase",
        "e\u{301}e\u{301}e\u{301}e\u{301}e\u{301}e\u{301}",
    ]

    static func json(_ text: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [text], options: [])
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    func testTheAdminAPICannotSetAPasswordEveryLoginRefuses() async throws {
        let harness = try await ServerHarness.withAdmin()
        try await harness.withClient { client in
            let root = try await client.sessionToken("root")
            for (index, password) in Self.unusable.enumerated() {
                let login = try await client.api(
                    .post, "/api/session", json: #"{"username":"alice","password":\#(Self.json(password))}"#)
                XCTAssertEqual(login.status, .badRequest, "the login rule itself refuses \(password.debugDescription)")
                XCTAssertEqual(login.error, "invalid_request")

                var answer = try await client.api(
                    .post, "/api/admin/users", token: root,
                    json: #"{"username":"user\#(index)","password":\#(Self.json(password))}"#)
                XCTAssertEqual(answer.status, .badRequest, password.debugDescription)
                XCTAssertEqual(answer.error, "invalid_request", "the JSON string rule, as at login: \(password.debugDescription)")
                answer = try await client.api(
                    .post, "/api/admin/users/alice/password", token: root, json: #"{"password":\#(Self.json(password))}"#)
                XCTAssertEqual(answer.status, .badRequest, password.debugDescription)
                XCTAssertEqual(answer.error, "invalid_request", "the JSON string rule, as at login: \(password.debugDescription)")
            }
            // The old password still works: nothing was set.
            _ = try await client.sessionToken("alice")

            for (index, password) in Self.usable.enumerated() {
                var answer = try await client.api(
                    .post, "/api/admin/users", token: root,
                    json: #"{"username":"usable\#(index)","password":\#(Self.json(password))}"#)
                XCTAssertEqual(answer.status, .created, password.debugDescription)
                answer = try await client.api(
                    .post, "/api/session", json: #"{"username":"usable\#(index)","password":\#(Self.json(password))}"#)
                XCTAssertEqual(answer.status, .ok, "what can be set logs in: \(password.debugDescription)")
                answer = try await client.api(
                    .post, "/api/org_token/",
                    json: #"{"username":"usable\#(index)","password":\#(Self.json(password)),"org_name":"org1"}"#)
                XCTAssertEqual(answer.error, "not_a_member", "the password was right: \(password.debugDescription)")
            }
        }
        try await harness.shutdown()
    }

    func testTheBootstrapAdminCannotGetAPasswordEveryLoginRefuses() async throws {
        do {
            let harness = try await ServerHarness.make { configuration in
                configuration.bootstrapAdmin = "first-admin"
                configuration.bootstrapAdminPassword = "bootstrap\tpassphrase"
            }
            try await harness.shutdown()
            XCTFail("a bootstrap password with a tab was accepted")
        } catch let error as BrokerError {
            XCTAssertEqual(error.code, .invalidPassword)
        }
    }

    func testTheCommandLineCannotSetAPasswordEveryLoginRefuses() throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        XCTAssertEqual(try broker.run(["users", "add", "alice", "--password-stdin"], stdin: "correct horse battery\n").status, 0)
        for password in Self.unusable where !password.contains("\n") && !password.contains("\r") {
            var result = try broker.run(["users", "add", "carol", "--password-stdin"], stdin: password + "\n")
            XCTAssertEqual(result.status, 1, password.debugDescription)
            XCTAssertTrue(result.stderr.contains("control characters"), result.stderr)
            XCTAssertFalse(result.stderr.contains(password), "the password is not echoed")
            result = try broker.run(["users", "passwd", "alice", "--password-stdin"], stdin: password + "\n")
            XCTAssertEqual(result.status, 1, password.debugDescription)
            XCTAssertTrue(result.stderr.contains("control characters"), result.stderr)
        }
        let listed = try broker.run(["users", "list"])
        XCTAssertFalse(listed.stdout.contains("carol"), listed.stdout)
    }
}
