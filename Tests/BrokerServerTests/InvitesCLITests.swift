import BrokerCore
import BrokerSQLite
import Foundation
import Logging
import XCTest

/// `broker invites`, as an operator runs it: the code printed once and stored only as its hash,
/// the list, revocation, the refusals, and the audit lines with the actor `cli`.
final class InvitesCLITests: XCTestCase {
    var broker: BrokerBinary!

    override func setUpWithError() throws {
        broker = try BrokerBinary.make()
    }

    override func tearDown() {
        broker.cleanUp()
    }

    /// The stored invitation whose code `printed` is, read from the database the CLI wrote.
    private func stored(code printed: String) async throws -> Invitation? {
        let path = (broker.workDirectory.appendingPathComponent("data").path as NSString).appendingPathComponent("broker.sqlite3")
        let store = try await SQLiteStore.open(path: path, logger: Logger(label: "test"))
        let invitation = try await store.read { tx in try await tx.invitation(codeHash: InvitationCode.hash(of: printed)) }
        try await store.close()
        return invitation
    }

    func testCreateListAndRevokeFromTheCommandLine() async throws {
        XCTAssertEqual(try broker.run(["orgs", "add", "org1"]).status, 0)
        var result = try broker.run(["invites", "create", "--org", "org1", "--role", "owner", "--expires", "3600"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let printed = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(printed.count, 2, result.stdout)
        let id = try XCTUnwrap(printed.first?.firstMatch(of: #/^invitation ([0-9a-z]+): owner of org1, expires /#)?.output.1)
        let code = try XCTUnwrap(printed.last?.firstMatch(of: #/^code: ([0-9A-Z]{4}(-[0-9A-Z]{1,4})+)$/#)?.output.1)
        let invitation = try await stored(code: String(code))
        XCTAssertEqual(invitation?.id, String(id))
        XCTAssertEqual(invitation?.role, .owner)
        XCTAssertNil(invitation?.createdBy, "made by the operator")
        XCTAssertEqual(invitation.map { $0.expiresAt.timeIntervalSince($0.createdAt) }, 3600)

        result = try broker.run(["invites", "create"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains(": an account without an organization, expires "), result.stdout)
        let alone = try XCTUnwrap(result.stdout.firstMatch(of: #/^invitation ([0-9a-z]+):/#.anchorsMatchLineEndings())?.output.1)

        result = try broker.run(["invites", "list", "--org", "org1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("ID"), result.stdout)
        XCTAssertTrue(result.stdout.contains("\(id)  owner  open"), result.stdout)
        XCTAssertFalse(result.stdout.contains(String(code)), "the code is shown once, by create")
        XCTAssertFalse(result.stdout.contains(String(alone)))
        result = try broker.run(["invites", "list"])
        XCTAssertTrue(result.stdout.contains("\(alone)  member  open"), result.stdout)

        result = try broker.run(["invites", "revoke", String(id)])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "revoked invitation \(id)\n")
        XCTAssertFalse(try broker.run(["invites", "list", "--org", "org1"]).stdout.contains(String(id)))
        let revoked = try await stored(code: String(code))
        XCTAssertNil(revoked)
        result = try broker.run(["invites", "revoke", String(id)])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("no invitation \(id)"), result.stderr)

        result = try broker.run(["audit", "--action", "invite.create"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains(String(id)) && result.stdout.contains(String(alone)), result.stdout)
        XCTAssertFalse(result.stdout.contains(String(code)), "no audit line holds the code")
        result = try broker.run(["audit", "--action", "invite.revoke"])
        XCTAssertTrue(result.stdout.contains(String(id)), result.stdout)
    }

    func testTheCommandLineRefusesWhatTheRulesRefuse() throws {
        XCTAssertEqual(try broker.run(["orgs", "add", "org1"]).status, 0)
        var result = try broker.run(["invites", "create", "--org", "org1", "--expires", "59"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("--expires must be between 60 and 2592000 seconds"), result.stderr)
        result = try broker.run(["invites", "create", "--org", "org9"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("no organization named org9"), result.stderr)
        result = try broker.run(["invites", "create", "--role", "owner"])
        XCTAssertNotEqual(result.status, 0, "an account alone has no role")
        XCTAssertTrue(result.stderr.contains("--role needs --org"), result.stderr)
        result = try broker.run(["invites", "list", "--org", "org9"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(try broker.run(["invites", "list"]).stdout, "ID  ROLE  STATE  CREATED  EXPIRES\n")
    }
}
