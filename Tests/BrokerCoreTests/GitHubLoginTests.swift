import BrokerCore
import BrokerCrypto
import BrokerSync
import Foundation
import XCTest

/// An in-memory GitHub for the rules; the wire-level client is tested against the fake server.
final class StubGitHub: GitHubAPI {
    struct Account {
        var login: String
        var id: Int64
        var organizations: [String: GitHubOrganizationMembership] = [:]
        var teams: [GitHubTeam] = []
    }

    private let accounts = Locked<[String: Account]>([:])
    private let calls = Locked(0)
    private let failure = Locked<GitHubError?>(nil)

    func add(token: String, _ account: Account) { accounts.withLock { $0[token] = account } }
    func remove(token: String) { accounts.withLock { $0[token] = nil } }
    func update(token: String, _ change: (inout Account) -> Void) {
        accounts.withLock { if var account = $0[token] { change(&account); $0[token] = account } }
    }
    func fail(with error: GitHubError?) { failure.withLock { $0 = error } }
    var callCount: Int { calls.withLock { $0 } }

    private func account(_ token: String) throws(GitHubError) -> Account {
        calls.withLock { $0 += 1 }
        if let error = failure.withLock({ $0 }) { throw error }
        guard let account = accounts.withLock({ $0[token] }) else { throw .unauthorized }
        return account
    }

    func user(token: String) async throws(GitHubError) -> GitHubUser {
        let account = try account(token)
        return GitHubUser(login: account.login, id: account.id)
    }

    func organizationMembership(token: String, organization: String, login: String) async throws(GitHubError) -> GitHubOrganizationMembership? {
        try account(token).organizations[organization]
    }

    func teams(token: String) async throws(GitHubError) -> [GitHubTeam] { try account(token).teams }

    func requestDeviceCode(scope: String) async throws(GitHubError) -> GitHubDeviceCode {
        throw .unavailable("not in the stub")
    }

    func pollDeviceAuthorization(deviceCode: String) async throws(GitHubError) -> GitHubDevicePoll {
        throw .unavailable("not in the stub")
    }
}

final class GitHubLoginTests: XCTestCase {
    var harness: CoreHarness!
    var github: StubGitHub!

    override func setUp() async throws {
        let stub = StubGitHub()
        github = stub
        harness = try await CoreHarness.make(githubAPI: stub) { configuration in
            configuration.githubOrganizations = [
                GitHubOrganizationMapping(
                    organization: "sliderule", githubOrganization: "SlideRuleEarth",
                    teams: ["devs": "sliderule-dev"]),
                GitHubOrganizationMapping(
                    organization: "teamonly", githubOrganization: "OtherOrg", admitMembers: false,
                    teams: ["ops": "ops-cluster"]),
            ]
            configuration.homeOrganization = "sliderule"
        }
        try await harness.seed()  // alice member of org1
        stub.add(token: "pat-alice", .init(login: "Alice-GH", id: 1))
        stub.add(
            token: "pat-carol",
            .init(
                login: "carol", id: 3,
                organizations: ["SlideRuleEarth": .init(state: "active", role: "admin")],
                teams: [.init(slug: "devs", organization: "SlideRuleEarth"), .init(slug: "ops", organization: "OtherOrg")]))
        stub.add(token: "pat-dave", .init(login: "dave", id: 4, organizations: ["SlideRuleEarth": .init(state: "pending", role: "member")]))
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    var service: GitHubLoginService { harness.services.github! }

    func testALinkedAccountGetsExactlyItsMemberships() async throws {
        try await harness.services.accounts.linkGitHub("alice", login: "alice-gh", by: .operator)
        let issued = try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        let claims = try harness.services.verifier.verify(issued.token, audience: "org1")
        XCTAssertEqual(claims.subject, "alice", "sub is the account, never the GitHub login")
        XCTAssertEqual(claims.githubLogin, "Alice-GH", "the GitHub login as GitHub spells it, for display")
        XCTAssertEqual(claims.username, "alice")
        XCTAssertEqual(claims.audience, ["org1"])
        XCTAssertEqual(claims.memberships, ["org1": ["member"]])
        XCTAssertEqual(claims.organization, "org1", "the home org is not theirs: the first org they belong to")
        XCTAssertEqual(claims.identityProvider, "github")
        XCTAssertEqual(claims.authenticationMethods, ["github_pat"])
        XCTAssertEqual(claims.expiresAt - claims.issuedAt, 43_200, "generation-2 tokens live 12 h")
    }

    func testMappedOrganizationsAdmitMembersAdminsAsOwnersAndTeamsAsClusters() async throws {
        let issued = try await service.generation2Login(githubToken: "pat-carol", method: .githubPAT)
        let claims = try harness.services.verifier.verify(issued.token)
        XCTAssertEqual(claims.audience, ["ops-cluster", "sliderule", "sliderule-dev"], "never a wildcard")
        XCTAssertEqual(claims.organization, "sliderule")
        XCTAssertEqual(claims.memberships, ["sliderule": ["owner", "member"], "teamonly": ["member"]])
        // An owner of sliderule, a member of teamonly: owner only at sliderule's clusters.
        XCTAssertEqual(claims.organizationRoles, ["member"], "only the roles held in every organization")
        XCTAssertEqual(
            claims.clusterRoles,
            ["sliderule": ["owner", "member"], "sliderule-dev": ["owner", "member"], "ops-cluster": ["member"]])
        // A local account was created at first login, linked, without a password.
        let account = try await harness.services.store.transaction { try await $0.user(githubLogin: "CAROL") }
        XCTAssertEqual(account?.username, "carol")
        XCTAssertNil(account?.passwordHash)
        XCTAssertEqual(claims.userID, account?.id)
    }

    /// The owner of one organization who is a member of another is a member at the other's
    /// cluster: in `cluster_roles`, and in `org_roles` for gateways that read only that.
    func testAMultiClusterTokenCarriesTheRolesOfEachClustersOrganization() async throws {
        try await harness.services.accounts.linkGitHub("alice", login: "alice-gh", by: .operator)
        try await harness.services.accounts.addMember(organization: "org1", username: "alice", role: .owner, by: .operator)
        try await harness.services.accounts.addMember(organization: "org2", username: "alice", role: .member, by: .operator)
        let issued = try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        let claims = try harness.services.verifier.verify(issued.token, audience: "cluster-two")
        XCTAssertEqual(claims.audience, ["cluster-two", "org1"])
        XCTAssertEqual(claims.organizationRoles, ["member"])
        XCTAssertEqual(claims.clusterRoles, ["org1": ["owner", "member"], "cluster-two": ["member"]])
        XCTAssertEqual(claims.roles(atCluster: "cluster-two"), ["member"])
        XCTAssertEqual(claims.roles(atCluster: "org1"), ["owner", "member"])
        // On the wire: one space-separated string per cluster, which HAProxy 2.6 can read.
        let payload = try JSONSerialization.jsonObject(
            with: Data(XCTUnwrap(Base64URL.decode(String(issued.token.split(separator: ".")[1]))))) as? [String: Any]
        XCTAssertEqual(payload?["cluster_roles"] as? [String: String], ["cluster-two": "member", "org1": "owner member"])
        // Renewed tokens are built the same way.
        let renewed = try await service.generation2Refresh(bearer: issued.token)
        XCTAssertEqual(renewed.claims.clusterRoles, claims.clusterRoles)
        XCTAssertEqual(renewed.claims.organizationRoles, ["member"])
        // A generation-1 token names one organization and keeps its roles in org_roles.
        let bundle = try await service.generation1Login(githubToken: "pat-alice", organization: "org1")
        let single = try harness.services.verifier.verify(bundle.access, audience: "org1")
        XCTAssertEqual(single.organizationRoles, ["owner", "member"])
        XCTAssertNil(single.clusterRoles)
    }

    /// A cluster reached through two organizations gets the roles of the one owning it: a team
    /// cluster configured for sliderule stays sliderule's even if org2's policy lists it.
    func testAClusterReachedThroughTwoOrganizationsGetsItsOwnersRoles() async throws {
        _ = try await service.generation2Login(githubToken: "pat-carol", method: .githubPAT)  // creates carol
        let accounts = harness.services.accounts
        try await accounts.addMember(organization: "org2", username: "carol", role: .member, by: .operator)
        // The API refuses a policy naming another organization's cluster (audience_taken); a
        // store written before names had one holder may still carry one.
        do {
            try await accounts.setTokenPolicy(
                organization: "org2", to: .init(audiences: ["cluster-two", "sliderule-dev"]), brokerAccessLifetime: 3600,
                by: .operator)
            XCTFail("a policy claimed another organization's team cluster")
        } catch let error as BrokerError {
            XCTAssertEqual(error.code, .audienceTaken)
        }
        try await accounts.store.transaction { tx in
            let org2 = try await tx.organization(named: "org2")!
            try await tx.setTokenPolicy(organizationID: org2.id, to: .init(audiences: ["cluster-two", "sliderule-dev"]))
        }
        harness.clock.advance(by: 1)
        let claims = try await service.generation2Login(githubToken: "pat-carol", method: .githubPAT).claims
        XCTAssertEqual(claims.clusterRoles?["sliderule-dev"], ["owner", "member"], "sliderule's team cluster")
        XCTAssertEqual(claims.clusterRoles?["cluster-two"], ["member"])
        XCTAssertEqual(claims.organizationRoles, ["member"])
    }

    func testNobodyAdmitsAPendingMemberOrAStranger() async throws {
        await XCTAssertBrokerError(.notAMember) {
            try await self.service.generation2Login(githubToken: "pat-dave", method: .githubPAT)
        }
        await XCTAssertBrokerError(.githubTokenInvalid) {
            try await self.service.generation2Login(githubToken: "revoked", method: .githubPAT)
        }
    }

    func testIdentitiesAreCachedByTokenHashForTheTTL() async throws {
        _ = try await service.generation2Login(githubToken: "pat-carol", method: .githubPAT)
        let afterFirst = github.callCount
        _ = try await service.generation2Login(githubToken: "pat-carol", method: .githubPAT)
        XCTAssertEqual(github.callCount, afterFirst, "a warm cache costs no GitHub call")
        harness.clock.advance(by: 301)
        _ = try await service.generation2Login(githubToken: "pat-carol", method: .githubPAT)
        XCTAssertGreaterThan(github.callCount, afterFirst)
        // Rejections are cached briefly too.
        let before = github.callCount
        for _ in 0..<3 {
            await XCTAssertBrokerError(.githubTokenInvalid) {
                try await self.service.generation2Login(githubToken: "bad", method: .githubPAT)
            }
        }
        XCTAssertEqual(github.callCount, before + 1)
    }

    func testGitHubFailuresMapToStableCodes() async throws {
        let cases: [(GitHubError, ErrorCode, Int)] = [
            (.rateLimited(retryAfter: 42), .githubRateLimited, 503),
            (.unavailable("timeout"), .githubUnavailable, 503),
            (.malformedResponse("not JSON"), .githubBadResponse, 502),
            (.forbidden("Resource not accessible"), .githubForbidden, 403),
        ]
        for (failure, code, status) in cases {
            github.fail(with: failure)
            do {
                _ = try await service.generation2Login(githubToken: "pat-carol-\(code)", method: .githubPAT)
                XCTFail("\(failure) succeeded")
            } catch let error as BrokerError {
                XCTAssertEqual(error.code, code)
                XCTAssertEqual(error.code.httpStatus, status)
                if case .rateLimited = failure { XCTAssertEqual(error.retryAfter, 42) }
            }
        }
        github.fail(with: nil)
    }

    func testGeneration2RefreshRechecksAndKeepsAuthTime() async throws {
        let first = try await service.generation2Login(githubToken: "pat-carol", method: .githubPAT)
        harness.clock.advance(by: 60)
        let renewed = try await service.generation2Refresh(bearer: first.token)
        XCTAssertEqual(renewed.claims.authenticatedAt, first.claims.authenticatedAt)
        XCTAssertEqual(renewed.claims.issuedAt, first.claims.issuedAt + 60)
        XCTAssertEqual(renewed.claims.memberships, first.claims.memberships)
        // Once GitHub's answer has expired, the holder of mapped orgs must log in again.
        harness.clock.advance(by: 300)
        await XCTAssertBrokerError(.invalidToken) { try await self.service.generation2Refresh(bearer: renewed.token) }
    }

    func testGeneration2RefreshNeverPassesTheSessionCap() async throws {
        try await harness.services.accounts.linkGitHub("alice", login: "alice-gh", by: .operator)
        var token = try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        // Store-only memberships need no GitHub answer; renew every 11 h for a week.
        for _ in 0..<15 {
            harness.clock.advance(by: 11 * 3600)
            token = try await service.generation2Refresh(bearer: token.token)
            XCTAssertLessThanOrEqual(token.claims.expiresAt, token.claims.authenticatedAt + 604_800)
        }
        // 165 h in: the last renewal was cut to the 3 h left of the week.
        XCTAssertEqual(token.claims.expiresAt, token.claims.authenticatedAt + 604_800)
        // Just past the week (inside the verifier's clock-skew leeway): no more renewals.
        harness.clock.advance(by: 3 * 3600 + 10)
        await XCTAssertBrokerError(.sessionExpired) { try await self.service.generation2Refresh(bearer: token.token) }
    }

    func testGeneration1GitHubLoginAndRefreshOfAMappedMembership() async throws {
        let bundle = try await service.generation1Login(githubToken: "pat-carol", organization: "sliderule")
        let claims = try harness.services.verifier.verify(bundle.access, audience: "sliderule")
        XCTAssertEqual(claims.subject, "carol")
        XCTAssertEqual(claims.organizationRoles, ["owner", "member"])
        XCTAssertEqual(claims.identityProvider, "github")
        let next = try await harness.services.orgTokens.refresh(bundle.refresh)
        XCTAssertEqual(next.claims.identityProvider, "github")
        // Carol leaves the GitHub org; GitHub's fresh answer no longer admits her.
        github.update(token: "pat-carol") { $0.organizations = [:]; $0.teams = [] }
        harness.clock.advance(by: 301)
        await XCTAssertBrokerError(.invalidRefreshToken) { try await self.harness.services.orgTokens.refresh(next.refresh) }
        await XCTAssertBrokerError(.notAMember) {
            try await self.service.generation1Login(githubToken: "pat-carol", organization: "sliderule")
        }
        await XCTAssertBrokerError(.unknownOrganization) {
            try await self.service.generation1Login(githubToken: "pat-carol", organization: "nope")
        }
    }

    func testAGitHubLoginTakenByAnUnlinkedLocalAccountGetsASuffix() async throws {
        github.add(token: "pat-bob", .init(login: "bob", id: 9, organizations: ["SlideRuleEarth": .init(state: "active", role: "member")]))
        let issued = try await service.generation2Login(githubToken: "pat-bob", method: .githubPAT)
        XCTAssertEqual(issued.claims.username, "bob@github", "the local bob is someone else")
        XCTAssertEqual(issued.claims.subject, "bob@github", "two people never share a sub")
        XCTAssertEqual(issued.claims.githubLogin, "bob")
        // The same for generation 1 and broker sessions: the local bob's tokens say "bob".
        let bundle = try await service.generation1Login(githubToken: "pat-bob", organization: "sliderule")
        XCTAssertEqual(bundle.claims.subject, "bob@github")
        XCTAssertEqual(bundle.claims.githubLogin, "bob")
        let refreshed = try await harness.services.orgTokens.refresh(bundle.refresh)
        XCTAssertEqual(refreshed.claims.subject, "bob@github")
        XCTAssertEqual(refreshed.claims.githubLogin, "bob")
        let session = try await harness.services.sessions.signIn(githubToken: "pat-bob")
        XCTAssertEqual(session.claims.subject, "bob@github")
        XCTAssertEqual(session.claims.githubLogin, "bob")
    }

    /// A GitHub login that reads like a local account's name (another case, a look-alike) is
    /// someone else too: the admitted account gets the suffix, never a second `bob`.
    func testAGitHubLoginThatReadsLikeALocalNameGetsASuffix() async throws {
        let member = ["SlideRuleEarth": GitHubOrganizationMembership(state: "active", role: "member")]
        github.add(token: "pat-upper", .init(login: "BOB", id: 31, organizations: member))
        github.add(token: "pat-lookalike", .init(login: "a1ice", id: 32, organizations: member))
        let upper = try await service.generation2Login(githubToken: "pat-upper", method: .githubPAT)
        XCTAssertEqual(upper.claims.subject, "BOB@github")
        let lookalike = try await service.generation2Login(githubToken: "pat-lookalike", method: .githubPAT)
        XCTAssertEqual(lookalike.claims.subject, "a1ice@github")
    }

    func testAMembershipChangeAppliesWithinASecond() async throws {
        try await harness.services.accounts.linkGitHub("alice", login: "alice-gh", by: .operator)
        let first = try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        XCTAssertEqual(first.claims.memberships, ["org1": ["member"]])
        try await harness.services.accounts.addMember(organization: "org2", username: "alice", role: .owner, by: .operator)
        harness.clock.advance(by: 1)
        let second = try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        XCTAssertEqual(second.claims.memberships, ["org1": ["member"], "org2": ["owner", "member"]])
        try await harness.services.accounts.removeMember(organization: "org1", username: "alice", by: .operator)
        try await harness.services.accounts.removeMember(organization: "org2", username: "alice", by: .operator)
        harness.clock.advance(by: 1)
        await XCTAssertBrokerError(.notAMember) {
            try await self.service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        }
    }
    // MARK: The GitHub identity is the numeric user id

    func account(_ username: String) async throws -> User? {
        try await harness.services.store.read { try await $0.user(named: username) }
    }

    func testTheFirstVerifiedLoginRecordsTheGitHubIDAndNoOtherIDGetsTheAccount() async throws {
        try await harness.services.accounts.linkGitHub("alice", login: "alice-gh", by: .operator)
        let linked = try await account("alice")
        XCTAssertNil(linked?.githubID, "linked by login only")
        let first = try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        let recorded = try await account("alice")
        let alice = try XCTUnwrap(recorded)
        XCTAssertEqual(alice.githubID, 1, "recorded at the first verified login")
        XCTAssertEqual(alice.githubLogin, "Alice-GH", "as GitHub spells it")
        XCTAssertEqual(first.claims.userID, alice.id)

        // Alice renames her GitHub account; Mallory registers her old login.
        github.update(token: "pat-alice") { $0.login = "alice-renamed" }
        github.add(token: "pat-mallory", .init(login: "alice-gh", id: 666))
        await XCTAssertBrokerError(.githubIdentityMismatch) {
            try await self.service.generation2Login(githubToken: "pat-mallory", method: .githubPAT)
        }
        await XCTAssertBrokerError(.githubIdentityMismatch) {
            try await self.service.generation1Login(githubToken: "pat-mallory", organization: "org1")
        }
        await XCTAssertBrokerError(.githubIdentityMismatch) {
            try await self.harness.services.sessions.signIn(githubToken: "pat-mallory")
        }
        XCTAssertEqual(BrokerError(.githubIdentityMismatch, "").code.httpStatus, 401)
        let unchanged = try await account("alice")
        XCTAssertEqual(unchanged?.githubID, 1, "a refused login changes nothing")
    }

    func testARenameKeepsTheAccountAndUpdatesTheStoredLogin() async throws {
        try await harness.services.accounts.linkGitHub("alice", login: "alice-gh", by: .operator)
        let first = try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        github.update(token: "pat-alice") { $0.login = "alice-renamed" }
        harness.clock.advance(by: 301)  // GitHub's answer is asked again
        let renamed = try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        XCTAssertEqual(renamed.claims.userID, first.claims.userID)
        XCTAssertEqual(renamed.claims.subject, "alice")
        XCTAssertEqual(renamed.claims.githubLogin, "alice-renamed")
        XCTAssertEqual(renamed.claims.memberships, ["org1": ["member"]])
        let alice = try await account("alice")
        XCTAssertEqual(alice?.githubLogin, "alice-renamed")
        XCTAssertEqual(alice?.githubID, 1)
        // The old login is free: its new holder is a stranger, not alice.
        github.add(token: "pat-mallory", .init(login: "alice-gh", id: 666))
        await XCTAssertBrokerError(.notAMember) {
            try await self.service.generation2Login(githubToken: "pat-mallory", method: .githubPAT)
        }
    }

    func testALinkWithAGitHubIDAdmitsOnlyThatID() async throws {
        try await harness.services.accounts.linkGitHub("alice", login: "alice-gh", githubID: 1, by: .operator)
        github.add(token: "pat-mallory", .init(login: "alice-gh", id: 666))
        await XCTAssertBrokerError(.githubIdentityMismatch) {
            try await self.service.generation2Login(githubToken: "pat-mallory", method: .githubPAT)
        }
        let issued = try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        XCTAssertEqual(issued.claims.subject, "alice")
        // Re-linking the same login keeps the recorded id; another id is refused as a duplicate.
        try await harness.services.accounts.linkGitHub("alice", login: "ALICE-GH", by: .operator)
        let relinked = try await account("alice")
        XCTAssertEqual(relinked?.githubID, 1)
        await XCTAssertBrokerError(.alreadyExists) {
            try await self.harness.services.accounts.linkGitHub("bob", login: "bob-gh", githubID: 1, by: .operator)
        }
        await XCTAssertBrokerError(.invalidRequest) {
            try await self.harness.services.accounts.linkGitHub("alice", login: "alice-gh", githubID: 0, by: .operator)
        }
    }

    func testMappingAdmittedAccountsAreKeyedByID() async throws {
        let first = try await service.generation2Login(githubToken: "pat-carol", method: .githubPAT)
        let carol = try await account("carol")
        XCTAssertEqual(carol?.githubID, 3)
        // Carol renames; Mallory, an owner in the same GitHub org, takes the login "carol".
        github.update(token: "pat-carol") { $0.login = "carol-renamed" }
        github.add(
            token: "pat-mallory",
            .init(login: "carol", id: 666, organizations: ["SlideRuleEarth": .init(state: "active", role: "admin")]))
        await XCTAssertBrokerError(.githubIdentityMismatch) {
            try await self.service.generation2Login(githubToken: "pat-mallory", method: .githubPAT)
        }
        harness.clock.advance(by: 301)
        let renamed = try await service.generation2Login(githubToken: "pat-carol", method: .githubPAT)
        XCTAssertEqual(renamed.claims.userID, first.claims.userID, "the rename keeps carol's account")
        XCTAssertEqual(renamed.claims.subject, "carol")
        XCTAssertEqual(renamed.claims.githubLogin, "carol-renamed")
        // Now that carol's account carries her new login, Mallory gets an account of her own.
        let mallory = try await service.generation2Login(githubToken: "pat-mallory", method: .githubPAT)
        XCTAssertNotEqual(mallory.claims.userID, first.claims.userID)
        XCTAssertEqual(mallory.claims.subject, "carol@github")
        XCTAssertEqual(mallory.claims.githubLogin, "carol")
        let malloryAccount = try await account("carol@github")
        XCTAssertEqual(malloryAccount?.githubID, 666)
    }

    func testARenewalFollowsTheAccountNotTheLogin() async throws {
        let first = try await service.generation2Login(githubToken: "pat-carol", method: .githubPAT)
        XCTAssertEqual(first.claims.memberships?["sliderule"], ["owner", "member"])
        // Carol renames; Mallory takes "carol" and is refused, but GitHub's answer about her is
        // fresh in the cache. Carol's renewal must not pick it up by the login.
        github.update(token: "pat-carol") { $0.login = "carol-renamed" }
        github.add(token: "pat-mallory", .init(login: "carol", id: 666))
        await XCTAssertBrokerError(.githubIdentityMismatch) {
            try await self.service.generation2Login(githubToken: "pat-mallory", method: .githubPAT)
        }
        harness.clock.advance(by: 60)
        let renewed = try await service.generation2Refresh(bearer: first.token)
        XCTAssertEqual(renewed.claims.userID, first.claims.userID)
        XCTAssertEqual(renewed.claims.subject, "carol")
        XCTAssertEqual(renewed.claims.githubLogin, "carol")
        XCTAssertEqual(renewed.claims.memberships, first.claims.memberships)
    }
}
