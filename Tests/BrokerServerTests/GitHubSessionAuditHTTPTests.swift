import BrokerCore
import FakeGitHub
import Foundation
import GitHubClient
import Hummingbird
import HummingbirdTesting
import XCTest

/// The generation-2 session (a GitHub login renewed at `/auth/refresh`) over real HTTP: its
/// login, renewal, revocation and the refused renewal after it all name the account and the
/// session; the token is never written.
final class GitHubSessionAuditHTTPTests: XCTestCase {
    func testAGeneration2SessionIsNamedFromLoginToRefusedRenewal() async throws {
        let (github, client, clock) = try await FakeGitHub.startWithClient()
        let harness = try await ServerHarness.make(githubAPI: client, clock: clock) { configuration in
            configuration.githubOrganizations = [
                GitHubOrganizationMapping(organization: "sliderule", githubOrganization: "SlideRuleEarth", teams: [:])
            ]
            configuration.homeOrganization = "sliderule"
        }
        github.addUser(login: "carol", id: 30, token: "ghp_carol", organizations: ["SlideRuleEarth": .member])
        let (token, renewed) = try await harness.withClient { client in
            let (status, body) = try await client.postJSON("/auth/github/pat", #"{"pat":"ghp_carol"}"#)
            XCTAssertEqual(status, .ok)
            let token = try XCTUnwrap(body["token"] as? String)
            clock.advance(by: 60)
            let (renewal, renewedBody) = try await client.getJSON("/auth/refresh", headers: [.authorization: "Bearer \(token)"])
            XCTAssertEqual(renewal, .ok)
            let renewed = try XCTUnwrap(renewedBody["token"] as? String)
            let revocation = try await client.form("/oauth/revoke", "token=\(renewed)")
            XCTAssertEqual(revocation.status, .ok)
            let (refused, _) = try await client.getJSON("/auth/refresh", headers: [.authorization: "Bearer \(token)"])
            XCTAssertEqual(refused, .unauthorized)
            return (token, renewed)
        }
        let sid = try SessionAuditHTTPTests.sessionID(of: token)
        let text = try String(contentsOfFile: harness.services.configuration.auditLogPath, encoding: .utf8)
        let events = text.split(separator: "\n").compactMap { AuditEvent(jsonLine: Array($0.utf8)) }
        func line(_ action: AuditAction, _ outcome: AuditOutcome) throws -> AuditEvent {
            try XCTUnwrap(events.first { $0.action == action && $0.outcome == outcome }, "\(action) \(outcome)")
        }
        for event in [
            try line(.loginGitHubPAT, .success), try line(.tokenRefresh, .success), try line(.tokenRevoke, .success),
            try line(.tokenRefresh, .failure),
        ] {
            XCTAssertEqual([event.actor, event.session, event.clientIP], ["carol", sid, "127.0.0.1"], "\(event)")
        }
        XCTAssertEqual(try line(.tokenRevoke, .success).reason, "access_token session_ended")
        XCTAssertFalse(text.contains(token) || text.contains(renewed) || text.contains("ghp_carol"), "no token in the log")
        try await harness.shutdown()
        await github.stop()
    }
}
