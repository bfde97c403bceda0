import BrokerCore
import Foundation
import BrokerCrypto
import Logging
import XCTest

@testable import BrokerSQLite

/// Credential and session versions: what advances them, that a session is recorded only under
/// the versions its login read with the credential, and that a session of older versions is
/// refused wherever it is presented.
final class CredentialVersionTests: SeededCoreTestCase {
    var store: any Store { harness.services.store }

    func account(_ name: String) async throws -> User {
        try await XCTUnwrapAsync(try await store.read { tx in try await tx.user(named: name) })
    }

    func testASessionIsRecordedOnlyUnderTheVersionsItsLoginRead() async throws {
        let accounts = harness.services.accounts
        let now = harness.clock.now()
        // What a login read before checking the password; then the reset commits.
        let seen = try await account("alice")
        try await accounts.setPassword("alice", password: "a brand new passphrase 42", by: .operator)
        await XCTAssertBrokerError(.credentialsChanged) {
            try await PresentedTokens.startSession(
                in: self.store, for: seen, scope: .broker, methods: [.password], client: .broker, authenticatedAt: now,
                expiresAt: now.addingTimeInterval(900))
        }
        let organization = try await XCTUnwrapAsync(try await store.read { tx in try await tx.organization(named: "org1") })
        await XCTAssertBrokerError(.credentialsChanged) {
            try await self.harness.services.orgTokens.startSession(
                user: seen, organization: organization, role: .member, methods: [.password], identityProvider: "local",
                client: .slideRuleDefault)
        }
        let families = try await store.read { tx in try await tx.refreshFamilies(userID: seen.id) }
        XCTAssertEqual(families.count, 0, "nothing was recorded")

        // Sign out everywhere and disabling end a login under way just the same.
        let current = try await account("alice")
        _ = try await accounts.revokeAllSessions(of: "alice", by: .operator)
        await XCTAssertBrokerError(.credentialsChanged) {
            try await PresentedTokens.startSession(
                in: self.store, for: current, scope: .allClusters, methods: [.password], client: .broker, authenticatedAt: now,
                expiresAt: now.addingTimeInterval(900))
        }
        let beforeDisable = try await account("alice")
        try await accounts.setActive("alice", false, by: .operator)
        await XCTAssertBrokerError(.accountDisabled) {
            try await PresentedTokens.startSession(
                in: self.store, for: beforeDisable, scope: .broker, methods: [.password], client: .broker, authenticatedAt: now,
                expiresAt: now.addingTimeInterval(900))
        }
        try await accounts.setActive("alice", true, by: .operator)
        await XCTAssertBrokerError(.credentialsChanged) {
            try await PresentedTokens.startSession(
                in: self.store, for: beforeDisable, scope: .broker, methods: [.password], client: .broker, authenticatedAt: now,
                expiresAt: now.addingTimeInterval(900))
        }
        // A login that reads the account now starts one.
        let fresh = try await account("alice")
        let family = try await PresentedTokens.startSession(
            in: store, for: fresh, scope: .broker, methods: [.password], client: .broker, authenticatedAt: now,
            expiresAt: now.addingTimeInterval(900))
        XCTAssertEqual(family.accountVersions, fresh.versions)
    }

    func testWhatAdvancesWhichVersion() async throws {
        let accounts = harness.services.accounts
        var last = try await account("alice").versions
        XCTAssertEqual(last, .initial)
        func expect(
            credential: Bool, session: Bool, after step: String, file: StaticString = #filePath, line: UInt = #line
        ) async throws {
            let now = try await account("alice").versions
            XCTAssertEqual(now.credential > last.credential, credential, "credential version after \(step)", file: file, line: line)
            XCTAssertEqual(now.credential < last.credential, false, file: file, line: line)
            XCTAssertEqual(now.session > last.session, session, "session version after \(step)", file: file, line: line)
            last = now
        }
        try await accounts.setPassword("alice", password: "a brand new passphrase 42", by: .operator)
        try await expect(credential: true, session: true, after: "a password reset")
        _ = try await accounts.revokeAllSessions(of: "alice", by: .operator)
        try await expect(credential: false, session: true, after: "sign out everywhere")
        try await accounts.setActive("alice", false, by: .operator)
        try await expect(credential: false, session: true, after: "disabling")
        try await accounts.setActive("alice", true, by: .operator)
        try await expect(credential: false, session: false, after: "enabling")
        try await accounts.linkGitHub("alice", login: "alice-gh", by: .operator)
        try await expect(credential: false, session: false, after: "a first GitHub link")
        try await accounts.linkGitHub("alice", login: "alice-gh", by: .operator)
        try await expect(credential: false, session: false, after: "linking the same login again")
        try await accounts.linkGitHub("alice", login: "someone-else", by: .operator)
        try await expect(credential: true, session: true, after: "replacing the GitHub link")
        try await accounts.linkGitHub("alice", login: nil, by: .operator)
        try await expect(credential: true, session: true, after: "removing the GitHub link")
        _ = try await accounts.setGlobalRole("alice", to: .introspector, by: .operator)
        try await expect(credential: false, session: false, after: "a role change (re-read on every request)")
        let session = try await harness.services.sessions.signIn(username: "alice", password: "a brand new passphrase 42")
        try await accounts.revokeSession(try XCTUnwrap(session.claims.sessionID), of: "alice", by: .operator)
        try await expect(credential: false, session: false, after: "ending one session")
    }

    func testASessionOfOlderVersionsIsRefusedWhereverItIsPresented() async throws {
        let services = harness.services
        let bundle = try await services.orgTokens.login(username: "alice", password: CoreHarness.password, organization: "org1")
        let session = try await services.sessions.signIn(username: "alice", password: CoreHarness.password)
        try await services.accounts.addUser("root", password: CoreHarness.password, globalRole: .admin, by: .operator)
        let introspector = try await services.sessions.authenticate(
            bearer: try await services.sessions.signIn(username: "root", password: CoreHarness.password).token)
        // Only the versions change (as an older broker's revocation would leave a row unrevoked).
        let user = try await account("alice")
        _ = try await store.transaction { tx in try await tx.advanceSessionVersion(userID: user.id) }
        await XCTAssertBrokerError(.invalidToken) { try await services.sessions.authenticate(bearer: session.token) }
        await XCTAssertBrokerError(.invalidToken) {
            try await services.orgTokens.membershipStatus(bearer: bundle.access, organization: "org1")
        }
        await XCTAssertBrokerError(.invalidRefreshToken) { try await services.orgTokens.refresh(bundle.refresh) }
        for token in [bundle.access, bundle.refresh, session.token] {
            guard case .inactive = try await services.introspection.introspect(token, by: introspector) else {
                return XCTFail("introspection calls a token of an ended session active")
            }
        }
        // The refresh token was not spent by the refusal: it is refused, not reused.
        let families = try await store.read { tx in try await tx.refreshFamilies(userID: user.id) }
        XCTAssertTrue(families.allSatisfy { $0.revokedAt == nil })
    }

    func testARehashOfTheSamePasswordAdvancesNothing() async throws {
        // A hash of older parameters is replaced at the first right login: the same password,
        // the same credential, and the session that login started goes on.
        let older = PasswordHasher(parameters: Argon2idParameters(memoryKiB: 32, iterations: 1, parallelism: 1))
        let user = try await account("alice")
        let encoded = try older.hash(CoreHarness.password)
        try await store.transaction { tx in try await tx.updatePasswordHash(userID: user.id, to: encoded) }
        let session = try await harness.services.sessions.signIn(username: "alice", password: CoreHarness.password)
        let upgraded = try await account("alice")
        XCTAssertNotEqual(upgraded.passwordHash, encoded, "the hash was upgraded")
        XCTAssertEqual(upgraded.versions, .initial)
        let principal = try await harness.services.sessions.authenticate(bearer: session.token)
        XCTAssertEqual(principal.user.id, user.id)
    }
}

/// GitHub logins record their session under the versions of the account they resolved, which may
/// come from a snapshot remembered for a second: a link an administrator replaced meanwhile
/// starts no session.
final class CredentialVersionGitHubTests: XCTestCase {
    var harness: CoreHarness!

    override func setUp() async throws {
        let stub = StubGitHub()
        harness = try await CoreHarness.make(githubAPI: stub)
        try await harness.seed()
        stub.add(token: "pat-alice", .init(login: "Alice-GH", id: 1))
    }

    override func tearDown() async throws {
        try await harness.shutdown()
    }

    func testALinkReplacedMeanwhileStartsNoSessionFromARememberedSnapshot() async throws {
        let service = try XCTUnwrap(harness.services.github)
        try await harness.services.accounts.linkGitHub("alice", login: "alice-gh", by: .operator)
        // The first login records GitHub's user id on the link; the second is remembered.
        _ = try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        let before = try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        try await harness.services.accounts.linkGitHub("alice", login: "someone-else", by: .operator)
        await XCTAssertBrokerError(.invalidToken) { try await service.generation2Refresh(bearer: before.token) }
        // Within the same second the remembered snapshot still links GitHub user 1 to alice.
        await XCTAssertBrokerError(.credentialsChanged) {
            try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        }
        let alice = try await XCTUnwrapAsync(try await harness.services.store.read { tx in try await tx.user(named: "alice") })
        let live = try await harness.services.store.read { tx in try await tx.refreshFamilies(userID: alice.id) }
            .filter { $0.revokedAt == nil }
        XCTAssertEqual(live.count, 0, "no session was started")
        // The next login reads the account afresh: GitHub user 1 no longer has one.
        await XCTAssertBrokerError(.notAMember) {
            try await service.generation2Login(githubToken: "pat-alice", method: .githubPAT)
        }
    }
}

/// A migration keeps what was live and revives nothing that was not.
final class CredentialVersionMigrationTests: XCTestCase {
    func testExistingSessionsGoOnExceptThoseOfDisabledAccounts() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("versions-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("broker.sqlite3").path
        let logger = Logger(label: "test")
        let before = Schema.migrations.filter { $0.version <= 6 }
        let old = try await SQLiteStore.open(path: path, logger: logger, migrations: before)
        try await old.withExclusiveConnection { connection in
            for statement in [
                "INSERT INTO users (id, username, password_hash, is_active, created_at) VALUES (7, 'alice', NULL, 1, 0)",
                "INSERT INTO users (id, username, password_hash, is_active, created_at) VALUES (8, 'mallory', NULL, 0, 0)",
                """
                INSERT INTO refresh_families (id, user_id, kind, organization_id, authenticated_at, expires_at, amr)
                VALUES ('alice-session', 7, 'broker', NULL, 1700000000, 1800000000, '["pwd"]'),
                       ('mallory-session', 8, 'broker', NULL, 1700000000, 1800000000, '["pwd"]')
                """,
            ] {
                _ = try await connection.rows(statement)
            }
        }
        try await old.close()

        let store = try await SQLiteStore.open(path: path, logger: logger)
        let accounts = AccountAdministration(
            store: store, pool: PasswordHashingPool(hasher: .init(parameters: CoreHarness.cheapArgon2), concurrency: 1),
            clock: ManualWallClock(Date(timeIntervalSince1970: 1_700_000_100)))
        try await accounts.setActive("mallory", true, by: .operator)
        let (alice, mallory, aliceSession, mallorySession) = try await store.read { tx in
            (
                try await tx.user(id: 7), try await tx.user(id: 8), try await tx.refreshFamily(id: "alice-session"),
                try await tx.refreshFamily(id: "mallory-session")
            )
        }
        let aliceFamily = try XCTUnwrap(aliceSession)
        let malloryFamily = try XCTUnwrap(mallorySession)
        XCTAssertEqual(aliceFamily.accountVersions, .initial)
        XCTAssertNil(PresentedTokens.accountRefusal(alice, of: aliceFamily), "a live session goes on")
        XCTAssertEqual(PresentedTokens.accountRefusal(mallory, of: malloryFamily), .sessionRevoked)
        XCTAssertNotNil(malloryFamily.revokedAt, "enabling marks the sessions from before the disable ended")
        try await accounts.pool.shutdown()
        try await store.close()
    }
}

func XCTUnwrapAsync<T>(_ value: @autoclosure () async throws -> T?, file: StaticString = #filePath, line: UInt = #line) async throws -> T {
    let unwrapped = try await value()
    return try XCTUnwrap(unwrapped, file: file, line: line)
}
