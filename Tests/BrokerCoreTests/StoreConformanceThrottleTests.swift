import BrokerCore
import BrokerPostgres
import Foundation
import XCTest

/// The throttle counters replicas share (``StoreThrottleCounters``), on every engine: the store's
/// methods (window, forgetting, the bound on keys and its overflow), then the throttles themselves
/// on two stores on one database, standing for two replicas, with one injected clock.
extension StoreConformanceTests {
    private static let counter = ThrottleCounter.loginUser

    private func key(_ name: String, _ counter: ThrottleCounter = counter) -> ThrottleCounterKey {
        ThrottleCounterKey(counter: counter, key: name)
    }

    private func record(_ store: any Store, _ keys: [ThrottleCounterKey], at time: Double, window: Double = 100, maximumKeys: Int? = nil)
        async throws
    {
        _ = try await store.transaction { tx in
            try await tx.recordThrottleTime(
                keys, at: StoreFixture.date(time), cutoff: StoreFixture.date(time - window), maximumKeys: maximumKeys,
                heldUntil: nil)
        }
    }

    /// Every time the store still holds for each key (expired or not), as seconds.
    private func stored(_ store: any Store, _ keys: [ThrottleCounterKey], after cutoff: Double = 0) async throws -> [ThrottleCounterKey: [Double]] {
        try await store.read { tx in
            try await tx.throttleTimes(keys, after: StoreFixture.date(cutoff)).mapValues { $0.map(\.countedAt.timeIntervalSince1970) }
        }
    }

    func testThrottleTimesCountTheWindowAndRecordingDeletesWhatLeftIt() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (alice, bob, aliceElsewhere) = (key("alice"), key("bob"), key("alice", .loginIP))
            try await record(store, [alice, aliceElsewhere], at: 1000)
            try await record(store, [alice], at: 1010)
            try await record(store, [bob], at: 1020)
            var times = try await stored(store, [alice, bob, aliceElsewhere, key("carol")])
            XCTAssertEqual(times[alice], [1000, 1010])
            XCTAssertEqual(times[bob], [1020])
            XCTAssertEqual(times[aliceElsewhere], [1000], "counters are apart")
            XCTAssertNil(times[key("carol")], "a key counting nothing is absent")
            times = try await stored(store, [alice], after: 1000)
            XCTAssertEqual(times[alice], [1010], "only times after the cutoff count")

            // 1105: alice's 1000 has left the 100 s window; recording deletes it from the table.
            try await record(store, [alice], at: 1105)
            times = try await stored(store, [alice, bob])
            XCTAssertEqual(times[alice], [1010, 1105])
            XCTAssertEqual(times[bob], [1020])
            // A new key sweeps its whole counter: bob's 1020 goes too.
            try await record(store, [key("dave")], at: 1125)
            times = try await stored(store, [alice, bob, key("dave")])
            XCTAssertEqual(times[alice], [1105])
            XCTAssertNil(times[bob])
            XCTAssertEqual(times[key("dave")], [1125])

            try await store.transaction { tx in try await tx.forgetThrottleKey(alice) }
            times = try await stored(store, [alice, key("dave")])
            XCTAssertNil(times[alice], "forgotten")
            XCTAssertEqual(times[key("dave")], [1125], "only that key")
        }
    }

    func testAFloodOfFreshKeysMeetsTheOverflowAndNeverPushesOutACountingKey() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let (alice, bob) = (key("alice"), key("bob"))
            try await record(store, [alice], at: 1000, maximumKeys: 2)
            try await record(store, [bob], at: 1001, maximumKeys: 2)
            // The counter is full: 200 fresh keys all count in its one overflow key.
            let fresh = (0..<200).map { key("guess-\($0)") }
            for (index, guess) in fresh.enumerated() {
                try await record(store, [guess], at: 1002 + Double(index) * 0.1, maximumKeys: 2)
            }
            let times = try await stored(store, [alice, bob] + fresh + [.overflow(of: Self.counter)])
            XCTAssertEqual(times[alice], [1000], "a counting key is never pushed out")
            XCTAssertEqual(times[bob], [1001])
            XCTAssertEqual(times[.overflow(of: Self.counter)]?.count, 200)
            XCTAssertEqual(times[fresh[0]]?.count, 200, "a key without a place is judged by the overflow")
            let neverSeen = try await stored(store, [key("never-seen")])
            XCTAssertEqual(neverSeen[key("never-seen")]?.count, 200, "nor does a key seen for the first time escape it")

            // Once alice's and bob's times leave the window, a new key gets a place and starts
            // with the overflow's times still in the window (any of them may have been its own).
            try await record(store, [key("erin")], at: 1102.05, maximumKeys: 2)
            let afterwards = try await stored(store, [key("erin"), alice])
            XCTAssertEqual(afterwards[key("erin")]?.count, 200, "the overflow's 199 still in the window, and its own")
            XCTAssertEqual(afterwards[alice]?.count, 199, "her own time left the window and was deleted: the overflow judges her")
        }
    }

    func testThePrunerDeletesThrottleTimesOlderThanAnyWindow() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let day = Double(ThrottleCounting.longestWindow)
            // A counter that stopped counting: nothing records there again to delete its times.
            for index in 0..<5 {
                try await record(store, [key("idle-\(index)", .gitHubIP)], at: 1_000 + Double(index), window: day)
            }
            try await record(store, [key("recent", .loginIP)], at: 1_000 + day, window: day)
            let clock = ManualWallClock(StoreFixture.date(1_002.5 + day))
            let pruner = StoragePruner(store: store, clock: clock, leeway: 0, batchSize: 2, logger: StoreFixture.logger)
            try await pruner.prune()
            let idle = (0..<5).map { key("idle-\($0)", .gitHubIP) }
            let left = try await stored(store, idle + [key("recent", .loginIP)])
            XCTAssertEqual(left.keys.count, 3, "the three still younger than a day, and the recent one: \(left)")
            XCTAssertNil(left[idle[0]])
            XCTAssertNil(left[idle[2]])
            XCTAssertEqual(left[idle[3]], [1_003])
            XCTAssertEqual(left[key("recent", .loginIP)], [1_000 + day])
        }
    }

    /// Two throttles counting on two stores on one database: two replicas.
    private func replicas<T>(_ make: (ThrottleCounting) -> T) async throws -> (T, T) {
        (make(.shared(StoreThrottleCounters(store: try await self.makeStore()))),
         make(.shared(StoreThrottleCounters(store: try await self.makeStore()))))
    }

    /// Sends `count` wrong passwords of one user from one address at once, round-robin over
    /// `throttles`; returns how many were evaluated (admitted, then failed) rather than refused.
    private func wrongPasswordsAtOnce(_ count: Int, over throttles: [LoginThrottle]) async throws -> Int {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<count {
                group.addTask {
                    let throttle = throttles[index % throttles.count]
                    do {
                        try await throttle.failed(try await throttle.admit(username: "alice", clientIP: "192.0.2.1"))
                        return true
                    } catch let error as BrokerError where error.code == .tooManyAttempts {
                        return false
                    }
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
    }

    private func refusal(_ body: () async throws -> Void) async -> BrokerError? {
        do {
            try await body()
            return nil
        } catch let error as BrokerError {
            return error
        } catch {
            XCTFail("unexpected \(error)")
            return nil
        }
    }

    func testTheStoreDecidesWhetherCountersAreShared() async throws {
        try await self.onEveryEngine {
            let store = try await self.makeStore()
            let shared: Bool
            if case .shared = ThrottleCounting(for: store) { shared = true } else { shared = false }
            XCTAssertEqual(shared, store is PostgresStore, "PostgreSQL is shared by replicas, SQLite is one node")
        }
    }

    func testFailedLoginsOnTwoReplicasAreThrottledAsOne() async throws {
        try await self.onEveryEngine {
            let clock = ManualWallClock(StoreFixture.date(1_800_000_000))
            let policy = LoginThrottlePolicy(window: 60, userAndIPLimit: 4, userLimit: 100, ipLimit: 100)
            let (a, b) = try await self.replicas { LoginThrottle(policy: policy, clock: clock, counting: $0) }
            for index in 0..<4 {
                let replica = index % 2 == 0 ? a : b
                try await replica.failed(try await replica.admit(username: "alice", clientIP: "192.0.2.1"))
                clock.advance(by: 1)
            }
            for replica in [a, b] {
                let error = await self.refusal { _ = try await replica.admit(username: "alice", clientIP: "192.0.2.1") }
                XCTAssertEqual(error?.code, .tooManyAttempts, "4 failures in all, 2 on each replica")
                XCTAssertEqual(error?.retryAfter, 56, "until the first failure, on the other replica, leaves the window")
            }
            // Another address for alice is another pair.
            try await b.failed(try await b.admit(username: "alice", clientIP: "192.0.2.2"))

            clock.advance(by: 57)
            let right = try await b.admit(username: "alice", clientIP: "192.0.2.1")
            await b.succeeded(right)
            // The right password, on b, started the pair afresh for a too.
            for _ in 0..<4 { try await a.failed(try await a.admit(username: "alice", clientIP: "192.0.2.1")) }
            let error = await self.refusal { _ = try await b.admit(username: "alice", clientIP: "192.0.2.1") }
            XCTAssertEqual(error?.code, .tooManyAttempts)
        }
    }

    /// Wrong passwords arriving at one replica at the same moment: the attempts in flight hold the
    /// budget, and the ones waiting read the store again once those failures are counted there,
    /// so exactly `limit` are evaluated.
    func testConcurrentWrongPasswordsAtOneReplicaAreEvaluatedExactlyUpToTheLimit() async throws {
        try await self.onEveryEngine {
            let clock = ManualWallClock(StoreFixture.date(1_800_000_000))
            let throttle = LoginThrottle(
                policy: LoginThrottlePolicy(window: 60, userAndIPLimit: 4), clock: clock,
                counting: .shared(StoreThrottleCounters(store: try await self.makeStore())))
            let evaluated = try await self.wrongPasswordsAtOnce(24, over: [throttle])
            XCTAssertEqual(evaluated, 4, "login_throttle_user_ip wrong passwords, however many arrive at once")
            XCTAssertEqual(throttle.attemptsInFlight, 0)
            XCTAssertEqual(throttle.waitingAttempts, 0)
        }
    }

    func testHeldPlacesCountAgainstTheBudgetAndAsFailuresOnceTheirHoldEnds() async throws {
        try await self.onEveryEngine {
            let counters = StoreThrottleCounters(store: try await self.makeStore())
            let budget = [ThrottleBudget(key: key("alice"), limit: 2)]
            func hold(at time: Double) async throws -> ThrottleHold {
                try await counters.hold(budget, at: time, cutoff: time - 60, until: time + 30, maximumKeys: 100)
            }
            guard case .held(let first, let failures) = try await hold(at: 1000) else { return XCTFail("room for two") }
            XCTAssertEqual(failures, [0])
            guard case .held(let second, _) = try await hold(at: 1001) else { return XCTFail("room for two") }
            let busy = try await hold(at: 1002)
            XCTAssertEqual(busy, .busy(index: 0), "two attempts in flight hold the budget")
            try await counters.release(holding: first)
            guard case .held(let third, _) = try await hold(at: 1003) else { return XCTFail("a released place is free again") }
            try await counters.fail(holding: second, counting: [key("alice")], at: 1004, cutoff: 944, maximumKeys: 100)
            let stillBusy = try await hold(at: 1005)
            XCTAssertEqual(stillBusy, .busy(index: 0), "one failure and one attempt in flight")
            let stored = try await stored(counters.store, [key("alice")])
            XCTAssertEqual(stored[key("alice")], [1003, 1004], "the released place is gone, the failed one became a failure")
            // Nobody settles the third place (its replica was killed): once its hold ends it is
            // a failure, counted from its admission.
            let full = try await hold(at: 1034)
            XCTAssertEqual(full, .full(index: 0, oldest: 1003))
            _ = third
        }
    }

    func testConcurrentWrongPasswordsAtThreeReplicasAreEvaluatedExactlyUpToTheLimit() async throws {
        try await self.onEveryEngine {
            let clock = ManualWallClock(StoreFixture.date(1_800_000_000))
            let policy = LoginThrottlePolicy(window: 60, userAndIPLimit: 4)
            var throttles: [LoginThrottle] = []
            for _ in 0..<3 {
                throttles.append(
                    LoginThrottle(
                        policy: policy, clock: clock, counting: .shared(StoreThrottleCounters(store: try await self.makeStore()))))
            }
            let replicas = throttles
            let evaluated = try await self.wrongPasswordsAtOnce(30, over: replicas)
            XCTAssertEqual(evaluated, 4, "login_throttle_user_ip wrong passwords in all, however many replicas they reach at once")
            for throttle in replicas {
                XCTAssertEqual(throttle.attemptsInFlight, 0)
                XCTAssertEqual(throttle.waitingAttempts, 0)
            }
        }
    }

    func testRightPasswordsArrivingAtOnceAtTwoReplicasAllGetIn() async throws {
        try await self.onEveryEngine {
            let clock = ManualWallClock(StoreFixture.date(1_800_000_000))
            let policy = LoginThrottlePolicy(window: 60, userAndIPLimit: 3)
            let (a, b) = try await self.replicas { LoginThrottle(policy: policy, clock: clock, counting: $0) }
            let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<10 {
                    group.addTask {
                        let throttle = index % 2 == 0 ? a : b
                        do {
                            let attempt = try await throttle.admit(username: "alice", clientIP: "192.0.2.1")
                            try await Task.sleep(for: .milliseconds(20))  // the hash
                            await throttle.succeeded(attempt)
                            return true
                        } catch let error as BrokerError where error.code == .tooManyAttempts {
                            return false
                        }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            XCTAssertEqual(admitted, 10, "attempts in flight at the other replica are waited for, not counted as failures")
        }
    }

    func testAPlaceHeldByAVanishedReplicaIsWaitedForThenCountsAsAFailure() async throws {
        try await self.onEveryEngine {
            let clock = ManualWallClock(StoreFixture.date(1_800_000_000))
            let policy = LoginThrottlePolicy(window: 60, userAndIPLimit: 2, queueWait: .milliseconds(300))
            let (gone, survivor) = try await self.replicas { LoginThrottle(policy: policy, clock: clock, counting: $0) }
            // Two attempts admitted at a replica killed before it settled them.
            _ = try await gone.admit(username: "alice", clientIP: "192.0.2.1")
            _ = try await gone.admit(username: "alice", clientIP: "192.0.2.1")
            let busy = await self.refusal { _ = try await survivor.admit(username: "alice", clientIP: "192.0.2.1") }
            XCTAssertEqual(busy?.code, .tooManyAttempts, "they may still fail: waited for, then refused as busy")
            XCTAssertEqual(busy?.retryAfter, 1)
            clock.advance(by: LoginThrottle.attemptHold + 1)
            let full = await self.refusal { _ = try await survivor.admit(username: "alice", clientIP: "192.0.2.1") }
            XCTAssertEqual(full?.code, .tooManyAttempts, "past their hold, they count as failures: fail closed")
            XCTAssertEqual(full?.retryAfter, 60 - Int(LoginThrottle.attemptHold) - 1)
            XCTAssertEqual(survivor.waitingAttempts, 0)
        }
    }

    func testAStoreThatCannotCountRefusesTheLogin() async throws {
        try await self.onEveryEngine {
            let clock = ManualWallClock(StoreFixture.date(1_800_000_000))
            let store = try await self.makeUnmanagedStore()
            let throttle = LoginThrottle(
                policy: LoginThrottlePolicy(window: 60, userAndIPLimit: 4), clock: clock,
                counting: .shared(StoreThrottleCounters(store: store)))
            let attempt = try await throttle.admit(username: "alice", clientIP: "192.0.2.1")
            try await store.close()
            do {
                try await throttle.failed(attempt)
                XCTFail("a failure the store could not count passed silently")
            } catch {
                XCTAssertTrue(error is StoreError, "\(error)")
            }
            do {
                _ = try await throttle.admit(username: "alice", clientIP: "192.0.2.1")
                XCTFail("admitted without counting")
            } catch {
                XCTAssertTrue(error is StoreError, "refused as a store failure (503), never let through: \(error)")
            }
            XCTAssertEqual(throttle.attemptsInFlight, 0)
        }
    }

    func testGitHubLoginsAndRenewalsOnTwoReplicasCountAsOne() async throws {
        try await self.onEveryEngine {
            let clock = ManualWallClock(StoreFixture.date(1_800_000_000))
            let (a, b) = try await self.replicas {
                GitHubLoginThrottle(policy: GitHubLoginThrottlePolicy(window: 60, addressLimit: 3), clock: clock, counting: $0)
            }
            try await a.admit(clientIP: "203.0.113.9")
            try await b.admit(clientIP: "203.0.113.9")
            clock.advance(by: 10)
            try await a.admit(clientIP: "203.0.113.9")
            let error = await self.refusal { try await b.admit(clientIP: "203.0.113.9") }
            XCTAssertEqual(error?.code, .tooManyAttempts)
            XCTAssertEqual(error?.retryAfter, 50)
            try await b.admit(clientIP: "203.0.113.10")
            clock.advance(by: 51)
            try await b.admit(clientIP: "203.0.113.9")

            // Generation-2 renewals (no refresh tokens) count in the throttle counters.
            let policy = SessionRefreshThrottlePolicy(window: 60, sessionLimit: 2)
            let (first, second) = try await self.replicas {
                SessionRefreshThrottle(policy: policy, clock: clock, counting: $0)
            }
            try await first.admit(sessionID: "session-1")
            try await second.admit(sessionID: "session-1")
            let refusedSession = await self.refusal { try await first.admit(sessionID: "session-1") }
            XCTAssertEqual(refusedSession?.code, .tooManyAttempts)
            try await second.admit(sessionID: "session-2")
        }
    }

    /// A refresh-token renewal is judged from the uses of the session's tokens in the store,
    /// whichever replica made them; renewals of other sessions and uses before the window do
    /// not count, and a renewal that never committed left no use behind.
    func testRefreshTokenRenewalsAreCountedFromTheSessionsTokenUsesOnEveryReplica() async throws {
        try await self.onEveryEngine {
            let clock = ManualWallClock(StoreFixture.date(1_800_000_000))
            let policy = SessionRefreshThrottlePolicy(window: 60, sessionLimit: 2)
            let stores = [try await self.makeStore(), try await self.makeStore()]
            let (user, org) = try await StoreFixture.seedUserAndOrganization(stores[0])
            let renewals = stores.map {
                SessionRefreshThrottle(policy: policy, clock: clock, counting: .shared(StoreThrottleCounters(store: $0)))
            }
            // A chain of tokens t0 → t1 → …, each renewal using the last one at replica (index % 2).
            func issue(_ hash: String, family: String, at time: Date) async throws {
                try await stores[0].transaction { tx in
                    try await tx.insertRefreshToken(
                        RefreshTokenRecord(tokenHash: hash, familyID: family, issuedAt: time, expiresAt: time.addingTimeInterval(3600)))
                }
            }
            func renew(_ index: Int, _ presented: String, _ successor: String, family: String = "family-1") async throws {
                _ = try await stores[index % 2].lockingTransaction { tx in
                    try await renewals[index % 2].admitRenewal(ofTokenHash: presented, in: tx)
                }
                let now = clock.now()
                try await stores[index % 2].transaction { tx in try await tx.markRefreshTokenUsed(hash: presented, at: now) }
                try await issue(successor, family: family, at: now)
            }
            for family in ["family-1", "family-2"] {
                try await stores[0].transaction { tx in try await tx.insertRefreshFamily(StoreFixture.family(family, user: user, org: org)) }
            }
            try await issue("t0", family: "family-1", at: clock.now())
            try await issue("u0", family: "family-2", at: clock.now())
            // A use before the window counts for nothing once it has left it.
            try await renew(0, "t0", "t1")
            clock.advance(by: 61)
            try await renew(1, "t1", "t2")
            clock.advance(by: 10)
            try await renew(0, "t2", "t3")
            let refused = await self.refusal {
                _ = try await stores[1].lockingTransaction { tx in try await renewals[1].admitRenewal(ofTokenHash: "t3", in: tx) }
            }
            XCTAssertEqual(refused?.code, .tooManyAttempts)
            XCTAssertEqual(refused?.retryAfter, 50)
            // Another session of the same account is not held back.
            try await renew(1, "u0", "u1", family: "family-2")
            // An unknown token is left to the renewal itself to refuse.
            let unknown = try await stores[0].lockingTransaction { tx in
                try await renewals[0].admitRenewal(ofTokenHash: "unknown", in: tx)
            }
            XCTAssertNil(unknown)
            clock.advance(by: 51)
            try await renew(1, "t3", "t4")
        }
    }
}
