import BrokerCrypto
import Foundation
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The broker's tokens checked by real gateways, started by the tests from the shipped examples
/// in config/gateways: Debian's HAProxy 2.6 with `jwt_verify` and the broker's PEM files, and
/// nginx (`nginx-light`) with `auth_request` to `broker gateway`, each in front of a backend that
/// echoes the headers it receives.
///
/// Missing haproxy or nginx: skipped on a developer machine, a failure when `CI` is set.
final class RealGatewayTests: XCTestCase {
    // MARK: HAProxy + jwt_verify

    func testHAProxyVerifiesRS256BrokerTokens() async throws { try await haproxyChecks("RS256") }
    func testHAProxyVerifiesES256BrokerTokens() async throws { try await haproxyChecks("ES256") }

    /// Valid tokens pass with the identity headers; tampered, forged and other-org tokens do not.
    func haproxyChecks(_ alg: String) async throws {
        let broker = try RealGateway.broker("signing_alg: \(alg)")
        defer { broker.cleanUp() }
        let (server, brokerPort) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }
        let stage = try HAProxyStage.prepare(broker, brokerPort: brokerPort, alg: alg)
        defer { stage.stop() }
        let (haproxy, port) = try stage.startHAProxy()
        defer { haproxy.stop() }
        let url = "http://127.0.0.1:\(port)/source/status"

        let token = try await RealGateway.accessToken(broker: brokerPort, org: "org1")
        XCTAssertEqual(RealGateway.part(token, 0)["alg"] as? String, alg)
        XCTAssertEqual(RealGateway.part(token, 1)["aud"] as? [String], ["cluster1"])
        let good = try await RealGateway.get(
            url, token: token, headers: ["x-sliderule-account": "mallory", "x-sliderule-org-roles": "owner"])
        XCTAssertEqual(good.status, 200, "\(good.text)\n\(haproxy.output)")
        XCTAssertEqual(good.echoed["x-sliderule-account"], "alice", "a client's identity header must be replaced")
        XCTAssertEqual(good.echoed["x-sliderule-org-roles"], "member")

        // An owner: every role of org_roles, space-separated.
        let ownerToken = try await RealGateway.accessToken(broker: brokerPort, user: "bob", org: "org1")
        let roles = try XCTUnwrap(RealGateway.part(ownerToken, 1)["org_roles"] as? [String])
        XCTAssertTrue(roles.contains("owner"), "\(roles)")
        let owner = try await RealGateway.get(url, token: ownerToken)
        XCTAssertEqual(owner.status, 200, owner.text)
        XCTAssertEqual(owner.echoed["x-sliderule-account"], "bob")
        XCTAssertEqual(owner.echoed["x-sliderule-org-roles"], roles.joined(separator: " "))

        // A valid token of another org's cluster: 403.
        let otherOrg = try await RealGateway.accessToken(broker: brokerPort, org: "org2")
        let refused = try await RealGateway.get(url, token: otherOrg)
        XCTAssertEqual(refused.status, 403, refused.text)
        XCTAssertNil(refused.echoed["x-sliderule-account"])

        // No token, and malformed ones: 401.
        let none = try await RealGateway.get(url, token: nil)
        XCTAssertEqual(none.status, 401, none.text)
        XCTAssertNotNil(none.header("WWW-Authenticate"))
        for garbage in ["not-a-jwt", "a.b.c", token + "x"] {
            let reply = try await RealGateway.get(url, token: garbage)
            XCTAssertEqual(reply.status, 401, "\(garbage): \(reply.text)")
        }

        // Tampered: the signature, or the payload (org2's token re-aimed at org1, old signature).
        let parts = token.split(separator: ".").map(String.init)
        var signature = Array(parts[2])
        signature[signature.count / 2] = signature[signature.count / 2] == "A" ? "B" : "A"
        let badSignature = [parts[0], parts[1], String(signature)].joined(separator: ".")
        try await expect(url, badSignature, 401)

        let otherParts = otherOrg.split(separator: ".").map(String.init)
        var claims = RealGateway.part(otherOrg, 1)
        claims["aud"] = ["cluster1"]
        claims["org"] = "org1"
        claims["org_name"] = "org1"
        let forgedPayload = RealGateway.base64URLEncode(try JSONSerialization.data(withJSONObject: claims))
        let forged = [otherParts[0], forgedPayload, otherParts[2]].joined(separator: ".")
        try await expect(url, forged, 401)

        // Another algorithm in the header (none, HS256), or a kid HAProxy was not given: 401.
        let kid = RealGateway.kid(token)
        for header in [
            ["alg": "none", "typ": "at+jwt", "kid": kid], ["alg": "HS256", "typ": "at+jwt", "kid": kid],
            ["alg": alg, "typ": "at+jwt", "kid": "some-other-kid"],
        ] {
            let encoded = RealGateway.base64URLEncode(try JSONSerialization.data(withJSONObject: header))
            let reply = try await RealGateway.get(url, token: [encoded, parts[1], parts[2]].joined(separator: "."))
            XCTAssertEqual(reply.status, 401, "\(header): \(reply.text)")
        }
        // A token that is not an access token (typ other than at+jwt): 401.
        let jwtHeader = RealGateway.base64URLEncode(
            try JSONSerialization.data(withJSONObject: ["alg": alg, "typ": "JWT", "kid": kid]))
        try await expect(url, [jwtHeader, parts[1], parts[2]].joined(separator: "."), 401)

        // Still fine after all that.
        try await expect(url, token, 200)
    }

    /// HAProxy 2.6's `jwt_verify` knows RFC 7518's names only (HS, RS, ES; not PS): neither
    /// `EdDSA` nor `Ed25519`. The shipped haproxy.cfg with either as GATEWAY_ALG does not even
    /// load, with Ed25519 public keys in its slots; the same slots load for RS256, so the name
    /// is what HAProxy refuses. docs/gateways.md's table says so because of this test.
    func testHAProxy26KnowsNeitherEd25519Name() throws {
        let haproxy = try RealGateway.program("/usr/sbin/haproxy", package: "haproxy")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("haproxy-ed25519-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let keys = directory.appendingPathComponent("keys")
        try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
        let config = RealGateway.examples.appendingPathComponent("haproxy.cfg")
        let slots = try String(contentsOf: config, encoding: .utf8).matches(of: /jwt_verify\([^)]*\/key([0-9]+)\.pem"/)
            .compactMap { Int($0.output.1) }.max() ?? 0
        XCTAssertGreaterThan(slots, 0)
        let key = try PrivateKey.generate(.ed25519)
        for slot in 1...slots {
            try key.publicKey.spkiPEM().write(to: keys.appendingPathComponent("key\(slot).pem"), atomically: true, encoding: .utf8)
            try (key.publicKey.thumbprint + "\n").write(to: keys.appendingPathComponent("key\(slot).kid"), atomically: true, encoding: .utf8)
        }
        for alg in ["EdDSA", "Ed25519", "RS256"] {
            var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("GATEWAY_") }
            environment["GATEWAY_ISSUER"] = RealGateway.issuer
            environment["GATEWAY_CLUSTER_NAME"] = "cluster1"
            environment["GATEWAY_ALG"] = alg
            environment["GATEWAY_KEYS_DIR"] = keys.path
            environment["GATEWAY_BIND"] = "127.0.0.1:\(try RealGateway.freePort())"
            environment["GATEWAY_NODE"] = "127.0.0.1:\(try RealGateway.freePort())"
            let (status, text) = try RealGateway.runToEnd(
                URL(fileURLWithPath: haproxy), ["-c", "-f", config.path], environment: environment)
            if alg == "RS256" {
                XCTAssertEqual(status, 0, "the slots themselves load: \(text)")
            } else {
                XCTAssertNotEqual(status, 0, "HAProxy now knows \(alg): update docs/gateways.md. \(text)")
                XCTAssertTrue(text.contains("unknown JWT algorithm: \(alg)"), text)
            }
        }
    }

    /// HAProxy compares exp with its own clock, without leeway: a 2-second token passes, then fails.
    func testHAProxyRejectsExpiredTokens() async throws {
        let broker = try RealGateway.broker("access_lifetime: 2")
        defer { broker.cleanUp() }
        let (server, brokerPort) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }
        let stage = try HAProxyStage.prepare(broker, brokerPort: brokerPort)
        defer { stage.stop() }
        let (haproxy, port) = try stage.startHAProxy()
        defer { haproxy.stop() }
        let url = "http://127.0.0.1:\(port)/"

        let token = try await RealGateway.accessToken(broker: brokerPort, org: "org1")
        let exp = try XCTUnwrap(RealGateway.part(token, 1)["exp"] as? Int)
        let fresh = try await RealGateway.get(url, token: token)
        if Date().timeIntervalSince1970 < Double(exp) - 0.2 {
            XCTAssertEqual(fresh.status, 200, "\(fresh.text)\n\(haproxy.output)")
        }
        // Wait out exp (bounded: the token lives 2 s).
        let deadline = Date().addingTimeInterval(10)
        while Date().timeIntervalSince1970 < Double(exp) + 1.1 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let expired = try await RealGateway.get(url, token: token)
        XCTAssertEqual(expired.status, 401, expired.text)
        XCTAssertNil(expired.echoed["x-sliderule-account"])
    }

    /// The documented procedure: HAProxy holds the published `next` key, so a rotation needs no
    /// reload to accept the new active key's tokens; after the slots are refreshed, a reload
    /// (SIGUSR2 to the master) refuses no connection, and the following rotation passes too.
    func testHAProxyFollowsRotationsWithKeySlotsAndSeamlessReload() async throws {
        let broker = try RealGateway.broker("jwks_max_age: 1\nkey_prepublication: 1\nkey_reload_interval: 1")
        defer { broker.cleanUp() }
        let (server, brokerPort) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }
        let directory = try RealGateway.directory(broker, "haproxy")
        let keys = directory.appendingPathComponent("keys")
        let first = try RealGateway.refreshHAProxyKeys(brokerPort: brokerPort, keysDirectory: keys, alg: "RS256")
        XCTAssertEqual(first.0, 0, first.1)
        let again = try RealGateway.refreshHAProxyKeys(brokerPort: brokerPort, keysDirectory: keys, alg: "RS256")
        XCTAssertEqual(again.0, 2, "a second run without a change reports `unchanged`: \(again.1)")
        let (echo, backendPort) = try RealGateway.startEcho(in: directory)
        defer { echo.stop() }
        let (haproxy, port) = try RealGateway.startHAProxy(
            keysDirectory: keys, alg: "RS256", cluster: "cluster1", backendPort: backendPort, in: directory)
        defer { haproxy.stop() }
        let url = "http://127.0.0.1:\(port)/"

        let before = try await RealGateway.accessToken(broker: brokerPort, org: "org1")
        try await expect(url, before, 200, haproxy.output)

        // Rotation 1: the next key HAProxy already holds starts signing.
        let afterFirst = try await rotateAndWaitForNewKid(broker, brokerPort: brokerPort, from: RealGateway.kid(before))
        try await expect(url, afterFirst, 200, "the pre-published key, no reload")
        try await expect(url, before, 200, "the retired key's token")

        // Refresh the slots (the new next key) and reload while requests keep coming.
        let refreshed = try RealGateway.refreshHAProxyKeys(brokerPort: brokerPort, keysDirectory: keys, alg: "RS256")
        XCTAssertEqual(refreshed.0, 0, refreshed.1)
        async let load = Self.hammer(url, tokens: [before, afterFirst], seconds: 3)
        try await Task.sleep(for: .milliseconds(700))
        haproxy.signal(SIGUSR2)
        let (passed, failures) = await load
        XCTAssertEqual(failures, [], "requests refused during the reload\n\(haproxy.output)")
        XCTAssertGreaterThan(passed, 10)
        XCTAssertTrue(haproxy.process.isRunning, haproxy.output)

        // Rotation 2: the key loaded by the reload starts signing.
        let afterSecond = try await rotateAndWaitForNewKid(broker, brokerPort: brokerPort, from: RealGateway.kid(afterFirst))
        for token in [before, afterFirst, afterSecond] {
            let reply = try await RealGateway.get(url, token: token)
            XCTAssertEqual(reply.status, 200, "kid \(RealGateway.kid(token)): \(reply.text)\n\(haproxy.output)")
        }
    }

    // MARK: nginx + broker gateway

    /// nginx `auth_request` to `broker gateway`: identity reaches the backend, 401/403 otherwise,
    /// rotations need no restart, and a withdrawn key's tokens stop passing.
    func testNginxWithForwardAuthFollowsRotationAndRetirement() async throws {
        try await withNginxStack { broker, brokerPort, port, logs in
            try await nginxChecks(broker, brokerPort: brokerPort, url: "http://127.0.0.1:\(port)/source/status", logs: logs)
        }
    }

    /// A broker (1 s JWKS max-age and pre-publication, so rotations are quick), a backend echoing
    /// the request, `broker gateway` and nginx in front, all stopped after `body`.
    func withNginxStack(
        _ body: (_ broker: BrokerBinary, _ brokerPort: Int, _ nginxPort: Int, _ logs: () -> String) async throws -> Void
    ) async throws {
        let broker = try RealGateway.broker("jwks_max_age: 1\nkey_prepublication: 1\nkey_reload_interval: 1")
        defer { broker.cleanUp() }
        let (server, brokerPort) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }
        let directory = try RealGateway.directory(broker, "nginx")
        let (echo, backendPort) = try RealGateway.startEcho(in: directory)
        defer { echo.stop() }
        let (gateway, gatewayPort) = try RealGateway.startForwardAuth(
            broker, brokerPort: brokerPort, cluster: "cluster1", in: directory, extra: ["--refetch-interval", "1"])
        defer { gateway.stop() }
        let (nginx, port) = try RealGateway.startNginx(gatewayPort: gatewayPort, backendPort: backendPort, in: directory)
        defer { nginx.stop() }
        try await body(broker, brokerPort, port) { "\ngateway: \(gateway.output)\nnginx: \(nginx.output)" }
    }

    func nginxChecks(_ broker: BrokerBinary, brokerPort: Int, url: String, logs: () -> String) async throws {

        let token = try await RealGateway.accessToken(broker: brokerPort, org: "org1")
        let good = try await RealGateway.get(
            url, token: token, headers: ["x-sliderule-account": "mallory", "x-sliderule-org-roles": "owner"])
        XCTAssertEqual(good.status, 200, good.text + logs())
        XCTAssertEqual(good.echoed["x-sliderule-account"], "alice", "a client's identity header must be replaced")
        XCTAssertEqual(good.echoed["x-sliderule-org-roles"], "member")
        XCTAssertEqual(good.echoed["authorization"], "Bearer \(token)")

        let ownerToken = try await RealGateway.accessToken(broker: brokerPort, user: "bob", org: "org1")
        let roles = try XCTUnwrap(RealGateway.part(ownerToken, 1)["org_roles"] as? [String])
        let owner = try await RealGateway.get(url, token: ownerToken)
        XCTAssertEqual(owner.status, 200, owner.text)
        XCTAssertEqual(owner.echoed["x-sliderule-account"], "bob")
        XCTAssertEqual(owner.echoed["x-sliderule-org-roles"], roles.joined(separator: " "))

        let none = try await RealGateway.get(url, token: nil)
        XCTAssertEqual(none.status, 401, none.text)
        XCTAssertNotNil(none.header("WWW-Authenticate"), "nginx passes the sidecar's challenge on")
        try await expect(url, "not-a-jwt", 401)
        var parts = token.split(separator: ".").map(String.init)
        parts[2] = String(parts[2].reversed())
        try await expect(url, parts.joined(separator: "."), 401)
        let otherOrg = try await RealGateway.accessToken(broker: brokerPort, org: "org2")
        let refused = try await RealGateway.get(url, token: otherOrg)
        XCTAssertEqual(refused.status, 403, refused.text + logs())

        // Rotate: tokens signed before and after both pass; nothing restarted.
        let oldKid = RealGateway.kid(token)
        let rotated = try await rotateAndWaitForNewKid(broker, brokerPort: brokerPort, from: oldKid)
        try await expect(url, rotated, 200, logs())
        try await expect(url, token, 200, logs())
        // And once more: this time the sidecar must fetch a key it has not seen yet.
        let rotatedAgain = try await rotateAndWaitForNewKid(broker, brokerPort: brokerPort, from: RealGateway.kid(rotated))
        for each in [token, rotated, rotatedAgain] {
            try await expect(url, each, 200, "kid \(RealGateway.kid(each))" + logs())
        }

        // Withdraw the first key: its tokens fail once the sidecar's cache is renewed
        // (max(jwks_max_age, 10 s) at most), the others keep passing. The deadline leaves room
        // for a machine busy with other builds; a pass usually takes ~12 s.
        let retired = try broker.run(["keys", "retire", "--now", "--", oldKid])
        XCTAssertEqual(retired.status, 0, retired.stdout + retired.stderr)
        let deadline = Date().addingTimeInterval(60)
        var status = 200
        while Date() < deadline {
            status = try await RealGateway.get(url, token: token).status
            if status != 200 { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        XCTAssertEqual(status, 401, "a withdrawn key's token still passes after 60 s" + logs())
        try await expect(url, rotated, 200, logs())
        try await expect(url, rotatedAgain, 200, logs())
    }

    /// Tokens issued and checked through nginx + `broker gateway` without pause while
    /// `broker keys rotate --force` runs three times: not one valid token is refused.
    func testRotationUnderLoadRejectsNoValidToken() async throws {
        try await withNginxStack { broker, brokerPort, port, logs in
            try await rotationUnderLoad(broker, brokerPort: brokerPort, url: "http://127.0.0.1:\(port)/", logs: logs)
        }
    }

    func rotationUnderLoad(_ broker: BrokerBinary, brokerPort: Int, url: String, logs: () -> String) async throws {

        let started = Date()
        let duration: TimeInterval = 15
        // Rotations on a thread of their own (the CLI blocks), 3.5 s apart.
        async let rotations: [String] = withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var outcomes: [String] = []
                for _ in 0..<3 {
                    Thread.sleep(forTimeInterval: 3.5)
                    let result = try? broker.run(["keys", "rotate", "--force"])
                    outcomes.append(result.map { "\($0.status) \($0.stdout)\($0.stderr)" } ?? "did not run")
                }
                continuation.resume(returning: outcomes)
            }
        }

        var checked = 0
        var rejections: [String] = []
        var firstTokenOfKid: [String: String] = [:]
        var kidOrder: [String] = []
        while Date().timeIntervalSince(started) < duration {
            let token = try await RealGateway.accessToken(broker: brokerPort, org: "org1")
            let kid = RealGateway.kid(token)
            if firstTokenOfKid[kid] == nil {
                firstTokenOfKid[kid] = token
                kidOrder.append(kid)
            }
            // The new token, and every 4th round the oldest token of each key seen so far.
            var batch = [token]
            if checked % 4 == 0 { batch += kidOrder.compactMap { firstTokenOfKid[$0] } }
            for each in batch {
                let reply = try await RealGateway.get(url, token: each)
                checked += 1
                if reply.status != 200 {
                    rejections.append("\(String(format: "%.1f", Date().timeIntervalSince(started))) s kid \(RealGateway.kid(each)): \(reply.status)")
                }
            }
        }
        let outcomes = await rotations
        XCTAssertEqual(outcomes.filter { !$0.hasPrefix("0 ") }, [], "every rotation succeeds")
        XCTAssertEqual(rejections, [], "valid tokens refused" + logs())
        XCTAssertGreaterThanOrEqual(kidOrder.count, 3, "tokens of at least two rotations were checked: \(kidOrder)")
        XCTAssertGreaterThan(checked, 20)
        print("rotation under load: \(checked) checks, \(kidOrder.count) signing keys, \(rejections.count) rejections")
    }

    // MARK: helpers

    /// One request through the gateway with `token`; asserts the status.
    func expect(
        _ url: String, _ token: String, _ status: Int, _ message: @autoclosure () -> String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let reply = try await RealGateway.get(url, token: token)
        XCTAssertEqual(reply.status, status, "\(message()) \(reply.text)", file: file, line: line)
    }

    /// `broker keys rotate --force`, then tokens until the running broker signs with another key
    /// (it reloads the ring within key_reload_interval). Returns the first such token.
    func rotateAndWaitForNewKid(_ broker: BrokerBinary, brokerPort: Int, from kid: String) async throws -> String {
        let rotation = try broker.run(["keys", "rotate", "--force"])
        XCTAssertEqual(rotation.status, 0, rotation.stdout + rotation.stderr)
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            let token = try await RealGateway.accessToken(broker: brokerPort, org: "org1")
            if RealGateway.kid(token) != kid { return token }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw RealGateway.Missing(description: "the running broker still signs with \(kid) 15 s after a rotation")
    }

    /// Requests (each on a new connection) for `seconds`: how many passed, and what failed.
    static func hammer(_ url: String, tokens: [String], seconds: TimeInterval) async -> (Int, [String]) {
        let started = Date()
        var passed = 0
        var failures: [String] = []
        var index = 0
        while Date().timeIntervalSince(started) < seconds {
            let token = tokens[index % tokens.count]
            index += 1
            do {
                let reply = try await RealGateway.get(url, token: token, headers: ["Connection": "close"])
                if reply.status == 200 { passed += 1 } else { failures.append("status \(reply.status)") }
            } catch {
                failures.append("\(error)")
            }
        }
        return (passed, failures)
    }
}
