import Foundation
import XCTest

/// Several real `broker serve` processes on one PostgreSQL database, sharing nothing else: every
/// rule of a session holds whichever replica each request reaches (issue 12).
final class ReplicaProcessTests: XCTestCase {
    private var replicas: ReplicaSet!

    override func setUp() async throws {
        replicas = try ReplicaSet(extraConfig: "key_reload_interval: 1")
    }

    override func tearDown() async throws {
        replicas?.stop()
    }

    /// A browser signed in to the portal at one replica is signed in at every replica; the
    /// CSRF token one replica put in a form is accepted by another (one shared `portal_key`);
    /// signing out at one ends the session at all.
    func testAPortalSessionIsSharedByTheReplicas() async throws {
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(2)
        var browser = PortalProcessClient()
        let signedIn = try await browser.signIn(ports[0], "alice", ReplicaSet.password)
        XCTAssertEqual(signedIn.status, 303, signedIn.body)
        XCTAssertEqual(signedIn.header("Location"), "/account")
        let account = try await browser.send("GET", ports[1], "/account")
        XCTAssertEqual(account.status, 200, account.body)
        XCTAssertTrue(account.body.contains("org1"))
        let token = try XCTUnwrap(browser.lastCSRF)
        let cookie = try XCTUnwrap(browser.cookies["__Host-broker_session"])
        let signedOut = try await browser.send("POST", ports[0], "/signout", form: [("csrf", token)])
        XCTAssertEqual(signedOut.status, 303, signedOut.body)
        XCTAssertEqual(signedOut.header("Location"), "/signin?notice=signed-out")
        XCTAssertNil(browser.cookies["__Host-broker_session"])
        browser.cookies["__Host-broker_session"] = cookie
        let replayed = try await browser.send("GET", ports[1], "/account")
        XCTAssertEqual(replayed.status, 303, "signed out at every replica")
    }

    /// Login at one replica, refresh at a second, the first refresh token again at a third: the
    /// reuse is detected and the whole family ends, including at the first replica.
    func testRefreshAtAnotherReplicaAndReuseAtAThirdRevokesTheFamilyEverywhere() async throws {
        replicas.stop()
        replicas = try ReplicaSet(extraConfig: "key_reload_interval: 1\nrefresh_reuse_grace: 0")
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(3)
        let first = try await ReplicaSet.login(ports[0], "alice", "org1")

        let refreshed = try await ReplicaSet.refresh(ports[1], first.refresh)
        XCTAssertEqual(refreshed.status, 200, refreshed.text)
        let successor = try XCTUnwrap(refreshed.body["refresh"] as? String)

        let reused = try await ReplicaSet.refresh(ports[2], first.refresh)
        XCTAssertEqual(reused.status, 401, reused.text)
        XCTAssertEqual(reused.error, "refresh_token_reused", reused.text)

        let afterReuse = try await ReplicaSet.refresh(ports[0], successor)
        XCTAssertEqual(afterReuse.status, 401, "the family ended at every replica: \(afterReuse.text)")
    }

    /// The same refresh token at two replicas at the same moment, with no grace window: one
    /// answer carries a new token, the other is the reuse, and the family is over — the single
    /// use holds across replicas, decided by the database, not by either process.
    func testTheSameRefreshTokenAtTwoReplicasAtOnceIsAnsweredOnce() async throws {
        replicas.stop()
        replicas = try ReplicaSet(extraConfig: "key_reload_interval: 1\nrefresh_reuse_grace: 0")
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(2)
        for round in 0..<8 {
            let tokens = try await ReplicaSet.login(ports[round % 2], "alice", "org1")
            let answers = try await ReplicaSet.refreshAtOnce(at: ports[0], and: ports[1], tokens.refresh)
            let successes = answers.filter { $0.status == 200 }
            XCTAssertEqual(successes.count, 1, "round \(round): \(answers.map(\.status))")
            XCTAssertEqual(answers.filter { $0.status == 401 }.map(\.error), ["refresh_token_reused"], "round \(round)")
            if let successor = successes.first?.body["refresh"] as? String {
                let after = try await ReplicaSet.refresh(ports[round % 2], successor)
                XCTAssertEqual(after.status, 401, "round \(round): the reuse ended the family: \(after.error ?? "")")
            }
        }
    }

    /// With the grace window (`refresh_reuse_grace`, for a client that lost an answer and
    /// retries), a duplicate at another replica gets the same successor, never a second one.
    func testADuplicateRefreshAtAnotherReplicaWithinTheGraceGetsTheSameSuccessor() async throws {
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(2)
        for round in 0..<8 {
            let tokens = try await ReplicaSet.login(ports[round % 2], "alice", "org1")
            let answers = try await ReplicaSet.refreshAtOnce(at: ports[0], and: ports[1], tokens.refresh)
            XCTAssertFalse(answers.contains { $0.status >= 500 }, "round \(round): \(answers.map(\.status))")
            let successors = Set(answers.compactMap { $0.body["refresh"] as? String })
            XCTAssertEqual(successors.count, 1, "round \(round): one successor, whichever replica answered")
        }
    }

    /// A logout (generation-1 blacklist) at one replica: the refresh token is refused at the others.
    func testLogoutAtOneReplicaIsEnforcedByTheOthers() async throws {
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(3)
        let tokens = try await ReplicaSet.login(ports[0], "alice", "org1")
        let logout = try await ReplicaSet.call("POST", ports[1], "/api/token/blacklist/", json: #"{"refresh":"\#(tokens.refresh)"}"#)
        XCTAssertEqual(logout.status, 200, logout.text)
        for port in [ports[2], ports[0]] {
            let refused = try await ReplicaSet.refresh(port, tokens.refresh)
            XCTAssertEqual(refused.status, 401, refused.text)
        }
    }

    /// One key ring for every replica: the same JWKS everywhere, and an access token issued by
    /// one replica is accepted by the others.
    func testAccessTokenOfOneReplicaIsAcceptedByEveryReplica() async throws {
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(3)
        let jwks = try await ports.asyncMap { try await ReplicaSet.call("GET", $0, "/.well-known/jwks.json").text }
        XCTAssertEqual(Set(jwks).count, 1, "one ring: \(jwks)")
        let tokens = try await ReplicaSet.login(ports[0], "alice", "org1")
        for port in ports {
            let status = try await ReplicaSet.call("GET", port, "/api/membership_status/org1/", bearer: tokens.access)
            XCTAssertEqual(status.status, 200, "replica at \(port): \(status.text)")
            XCTAssertEqual(status.body["active"] as? Bool, true, status.text)
        }
    }

    /// A membership removed by an operator's CLI while replicas serve: the next refresh at every
    /// replica is refused, with no cache to wait for.
    func testMembershipRemovedFromTheCommandLineIsSeenByTheNextRefreshAtEveryReplica() async throws {
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(2)
        let atFirst = try await ReplicaSet.login(ports[0], "alice", "org1")
        let atSecond = try await ReplicaSet.login(ports[1], "alice", "org1")
        let removed = try replicas.cli(["members", "remove", "org1", "alice"])
        XCTAssertEqual(removed.status, 0, removed.stderr)
        for (port, tokens) in [(ports[1], atFirst), (ports[0], atSecond)] {
            let refused = try await ReplicaSet.refresh(port, tokens.refresh)
            XCTAssertEqual(refused.status, 403, refused.text)
        }
    }

    /// Replicas started at the same moment on an empty database create exactly one ring.
    func testReplicasStartingAtOnceOnAnEmptyDatabaseCreateOneRing() async throws {
        let binaries = try (0..<3).map { _ in try replicas.binary() }
        let lock = NSLock()
        nonisolated(unsafe) var started: [Result<Int, any Error>] = []
        DispatchQueue.concurrentPerform(iterations: binaries.count) { index in
            let outcome = Result { () -> Int in
                let (process, port) = try binaries[index].serve()
                defer { process.terminate(); process.waitUntilExit() }
                return port
            }
            lock.withLock { started.append(outcome) }
        }
        _ = try started.map { try $0.get() }
        for broker in binaries { broker.cleanUp() }
        let ports = try replicas.start(3)
        let kids = try await ports.asyncMap { port -> Set<String> in
            let jwks = try await ReplicaSet.call("GET", port, "/.well-known/jwks.json")
            let keys = jwks.body["keys"] as? [[String: Any]] ?? []
            return Set(keys.compactMap { $0["kid"] as? String })
        }
        XCTAssertEqual(Set(kids).count, 1, "the replicas publish the same keys: \(kids)")
        let listed = try replicas.cli(["keys", "list"])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertEqual(
            listed.stdout.split(separator: "\n").filter { $0.contains("active") }.count, 1,
            "one active key, not one per racing replica: \(listed.stdout)")
    }

    /// `broker keys rotate --force` from an operator's machine: every replica publishes the new
    /// key within `key_reload_interval`, and tokens signed by the old key stay accepted.
    func testRotationFromTheCommandLineReachesEveryReplica() async throws {
        try replicas.seedMember("alice", of: "org1")
        let ports = try replicas.start(2)
        let before = try await ReplicaSet.login(ports[0], "alice", "org1")
        let rotated = try replicas.cli(["keys", "rotate", "--force"])
        XCTAssertEqual(rotated.status, 0, rotated.stderr)
        let cliKids = try replicas.cli(["keys", "list"]).stdout
        let deadline = Date().addingTimeInterval(30)
        var published: [String] = []
        repeat {
            published = try await ports.asyncMap { try await ReplicaSet.call("GET", $0, "/.well-known/jwks.json").text }
            if Set(published).count == 1, let only = published.first,
                cliKids.split(separator: "\n").allSatisfy({ line in
                    !line.contains("pending") || line.split(separator: " ").contains { only.contains($0) }
                })
            { break }
            try await Task.sleep(for: .milliseconds(200))
        } while Date() < deadline
        XCTAssertEqual(Set(published).count, 1, "every replica converged on one ring: \(published)")
        for port in ports {
            let status = try await ReplicaSet.call("GET", port, "/api/membership_status/org1/", bearer: before.access)
            XCTAssertEqual(status.status, 200, "a token signed before the rotation: \(status.text)")
        }
        let after = try await ReplicaSet.login(ports[1], "alice", "org1")
        let accepted = try await ReplicaSet.call("GET", ports[0], "/api/membership_status/org1/", bearer: after.access)
        XCTAssertEqual(accepted.status, 200, "a token of the new key at the other replica: \(accepted.text)")
    }

    /// docs/deployment.md's recovery from a lost KEK: a replica given another KEK refuses to
    /// start, naming both; once the sealed ring is deleted, the new KEK starts a new ring, and
    /// the sessions survive (refresh tokens are hashes in the store, not sealed).
    func testALostKEKIsRecoveredByDeletingTheSealedRingAndSessionsSurvive() async throws {
        try replicas.seedMember("alice", of: "org1")
        let before = try await ReplicaSet.login(try replicas.start(1)[0], "alice", "org1")
        replicas.stopReplicas()
        try replicas.replaceKeyEncryptionKey()
        let refused = try replicas.cli(["keys", "list"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("is not the one the key ring was sealed with"), refused.stderr)
        XCTAssertThrowsError(try replicas.binary().serve(), "serve refuses the other KEK")

        try replicas.database.query("DELETE FROM key_ring")
        let port = try replicas.start(1)[0]
        let refreshed = try await ReplicaSet.refresh(port, before.refresh)
        XCTAssertEqual(refreshed.status, 200, "the session survived: \(refreshed.text)")
        let status = try await ReplicaSet.call(
            "GET", port, "/api/membership_status/org1/", bearer: refreshed.body["access"] as? String)
        XCTAssertEqual(status.status, 200, "a token of the new ring: \(status.text)")
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
