import BrokerCore
import BrokerCrypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// Issue 10.10 (first half) over a real loopback socket: a failed login's audit line names the
/// account when the typed username is one, and otherwise only a keyed hash of it, the same for
/// the same text so that repeated attempts still line up.
final class AuditUsernamePrivacyHTTPTests: XCTestCase {
    func lines(_ harness: ServerHarness) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: harness.services.configuration.auditLogPath, encoding: .utf8)
        return try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testUnknownUsernamesAreRecordedOnlyAsAKeyedHash() async throws {
        // A password typed into the username field, twice, then a known account's wrong password.
        let misplaced = "Tr0ub4dor&3-in-the-wrong-field"
        let harness = try await ServerHarness.make()
        try await harness.withClient { client in
            for path in ["/api/org_token/", "/api/org_token/", "/api/session"] {
                let answer = try await client.api(
                    .post, path, json: #"{"username":"\#(misplaced)","password":"anything at all","org_name":"org1"}"#)
                XCTAssertEqual(answer.status, .unauthorized)
            }
            let known = try await client.api(
                .post, "/api/org_token/", json: #"{"username":"alice","password":"wrong password 1","org_name":"org1"}"#)
            XCTAssertEqual(known.status, .unauthorized)
            let shouted = try await client.api(
                .post, "/api/org_token/", json: #"{"username":"ALICE","password":"wrong password 2","org_name":"org1"}"#)
            XCTAssertEqual(shouted.status, .unauthorized)
        }
        let text = try String(contentsOfFile: harness.services.configuration.auditLogPath, encoding: .utf8)
        XCTAssertFalse(text.contains(misplaced), "the typed text never reaches the audit log")
        XCTAssertFalse(text.contains("Tr0ub4dor"))

        let failures = try lines(harness).filter { $0["outcome"] as? String == "failure" }
        XCTAssertEqual(failures.count, 5)
        let hashed = failures.prefix(3).compactMap { $0["actor"] as? String }
        XCTAssertEqual(hashed.count, 3)
        XCTAssertTrue(hashed[0].hasPrefix("hmac:") && hashed[0].count == 5 + 16, hashed[0])
        XCTAssertEqual(Set(hashed).count, 1, "the same text, the same hash: repeated attempts line up")
        XCTAssertEqual(hashed[0], harness.services.attemptedUsernames.pseudonym(misplaced))
        XCTAssertNotEqual(
            hashed[0], "hmac:" + String(Digest.sha256Hex(misplaced).prefix(16)), "keyed: not a plain hash anyone can compute")
        XCTAssertEqual(failures[3]["actor"] as? String, "alice", "a known account stays readable")
        XCTAssertEqual(failures[3]["reason"] as? String, "invalid_credentials")
        XCTAssertEqual(failures[4]["actor"] as? String, "alice", "the account as stored, however the name was typed")
        try await harness.shutdown()
    }

    func testTheKeyIsPerInstallationAndSurvivesARestart() async throws {
        let first = try await ServerHarness.make()
        let second = try await ServerHarness.make()
        let name = "correct horse battery staple"
        XCTAssertNotEqual(
            first.services.attemptedUsernames.pseudonym(name), second.services.attemptedUsernames.pseudonym(name))
        let reloaded = try await AttemptedUsernames.load(from: first.services.store)
        XCTAssertEqual(reloaded.pseudonym(name), first.services.attemptedUsernames.pseudonym(name))
        let known = await first.services.attemptedUsernames.auditName("alice")
        XCTAssertEqual(known, "alice")
        try await first.shutdown()
        try await second.shutdown()
    }
}
