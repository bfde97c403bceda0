import BrokerCrypto
import Foundation
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `signing_alg: Ed25519` (RFC 9864) end to end, with the real binaries: the broker issues and
/// publishes `Ed25519`, `broker gateway` accepts it, and a switch between `EdDSA` and `Ed25519`
/// keeps every token that was valid valid, under its own name only.
final class Ed25519ProcessTests: XCTestCase {
    /// The published JWKS as `kid: [member: value]`.
    static func jwks(_ brokerPort: Int) async throws -> [String: [String: String]] {
        let reply = try await RealGateway.request("http://127.0.0.1:\(brokerPort)/.well-known/jwks.json")
        XCTAssertEqual(reply.status, 200, reply.text)
        let keys = try XCTUnwrap((try JSONSerialization.jsonObject(with: reply.body) as? [String: Any])?["keys"] as? [[String: String]])
        return Dictionary(uniqueKeysWithValues: keys.map { ($0["kid"] ?? "-", $0) })
    }

    /// The forward-auth answer of `gateway` for `token`: the status and the account it names.
    static func forwardAuth(_ gatewayPort: Int, _ token: String) async throws -> (status: Int, account: String?) {
        let reply = try await RealGateway.get("http://127.0.0.1:\(gatewayPort)/", token: token)
        return (reply.status, reply.header("x-sliderule-account"))
    }

    /// `token`'s payload under a header naming `alg`, signed with `key`: a valid signature by
    /// the key that signed the original, only the name changed.
    static func relabelled(_ token: String, alg: String, key: PrivateKey) throws -> String {
        var header = RealGateway.part(token, 0)
        header["alg"] = alg
        let encoded = RealGateway.base64URLEncode(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        let input = encoded + "." + token.split(separator: ".")[1]
        return input + "." + Base64URL.encode(try key.sign(Array(input.utf8)))
    }

    func testABrokerSigningEd25519IssuesAndPublishesEd25519AndTheGatewayAcceptsIt() async throws {
        let broker = try RealGateway.broker("signing_alg: Ed25519")
        defer { broker.cleanUp() }
        let check = try broker.run(["config", "check"])
        XCTAssertEqual(check.status, 0, check.stderr)
        XCTAssertEqual(try ConfigCheckCLITests.settings(check.stdout)["signing_alg"]?.value, "Ed25519")
        let (server, brokerPort) = try broker.serve()
        defer { server.terminate(); server.waitUntilExit() }

        let token = try await RealGateway.accessToken(broker: brokerPort, org: "org1")
        XCTAssertEqual(RealGateway.part(token, 0)["alg"] as? String, "Ed25519")
        XCTAssertEqual(RealGateway.part(token, 0)["typ"] as? String, "at+jwt")
        let published = try await Self.jwks(brokerPort)
        XCTAssertEqual(published.count, 2, "active and next")
        for jwk in published.values {
            XCTAssertEqual(jwk["alg"], "Ed25519")
            XCTAssertEqual(jwk["kty"], "OKP")
            XCTAssertEqual(jwk["crv"], "Ed25519")
            XCTAssertEqual(jwk["use"], "sig")
        }
        XCTAssertNotNil(published[RealGateway.kid(token)], "signed by a published key")

        let keys = try broker.run(["keys", "list"])
        XCTAssertEqual(keys.status, 0, keys.stderr)
        let rows = keys.stdout.split(separator: "\n").dropFirst()
        XCTAssertEqual(rows.count, 2, keys.stdout)
        XCTAssertTrue(rows.allSatisfy { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first == "Ed25519" }, keys.stdout)

        let directory = try RealGateway.directory(broker, "gateway")
        let (gateway, gatewayPort) = try RealGateway.startForwardAuth(broker, brokerPort: brokerPort, cluster: "cluster1", in: directory)
        defer { gateway.stop() }
        let accepted = try await Self.forwardAuth(gatewayPort, token)
        XCTAssertEqual(accepted.status, 200, gateway.output)
        XCTAssertEqual(accepted.account, "alice")
        let otherCluster = try await Self.forwardAuth(gatewayPort, try await RealGateway.accessToken(broker: brokerPort, org: "org2"))
        XCTAssertEqual(otherCluster.status, 403)

        // The same key's valid signature over the same claims, named EdDSA: no EdDSA key is
        // published, and the Ed25519 key does not stand in for one.
        let activeKey = try PrivateKey(
            pem: String(contentsOf: broker.workDirectory.appendingPathComponent("keys/\(RealGateway.kid(token)).pem"), encoding: .utf8),
            algorithm: .ed25519)
        let asEdDSA = try await Self.forwardAuth(gatewayPort, try Self.relabelled(token, alg: "EdDSA", key: activeKey))
        XCTAssertEqual(asEdDSA.status, 401)
        // The relabelling itself is sound: named Ed25519 again, the re-signed token passes.
        let asEd25519 = try await Self.forwardAuth(gatewayPort, try Self.relabelled(token, alg: "Ed25519", key: activeKey))
        XCTAssertEqual(asEd25519.status, 200)
    }

    /// EdDSA → Ed25519 → EdDSA across restarts, the second set through `BROKER_SIGNING_ALG`: as
    /// for RS256 → ES256, the new name gets an active and a next key at start, the old keys stay
    /// published under their own name, and going back signs with the old active key again.
    func testSwitchingSigningAlgBetweenEdDSAAndEd25519KeepsEveryTokenValidUnderItsOwnName() async throws {
        var broker = try RealGateway.broker("signing_alg: EdDSA")
        defer { broker.cleanUp() }
        let directory = try RealGateway.directory(broker, "gateway")

        func phase(_ body: (_ brokerPort: Int, _ gatewayPort: Int) async throws -> Void) async throws {
            let (server, brokerPort) = try broker.serve()
            defer { server.terminate(); server.waitUntilExit() }
            let (gateway, gatewayPort) = try RealGateway.startForwardAuth(broker, brokerPort: brokerPort, cluster: "cluster1", in: directory)
            defer { gateway.stop() }
            try await body(brokerPort, gatewayPort)
        }

        var edDSAToken = ""
        try await phase { brokerPort, gatewayPort in
            edDSAToken = try await RealGateway.accessToken(broker: brokerPort, org: "org1")
            XCTAssertEqual(RealGateway.part(edDSAToken, 0)["alg"] as? String, "EdDSA")
            let published = try await Self.jwks(brokerPort)
            XCTAssertEqual(published.values.map { $0["alg"] ?? "-" }, ["EdDSA", "EdDSA"])
            let accepted = try await Self.forwardAuth(gatewayPort, edDSAToken)
            XCTAssertEqual(accepted.status, 200)
        }

        broker.environment["BROKER_SIGNING_ALG"] = "Ed25519"
        let check = try broker.run(["config", "check"])
        XCTAssertEqual(try ConfigCheckCLITests.settings(check.stdout)["signing_alg"]?.source, "environment BROKER_SIGNING_ALG")
        var ed25519Token = ""
        try await phase { brokerPort, gatewayPort in
            ed25519Token = try await RealGateway.accessToken(broker: brokerPort, org: "org1")
            XCTAssertEqual(RealGateway.part(ed25519Token, 0)["alg"] as? String, "Ed25519")
            let published = try await Self.jwks(brokerPort)
            XCTAssertEqual(published.values.map { $0["alg"] ?? "-" }.sorted(), ["Ed25519", "Ed25519", "EdDSA", "EdDSA"])
            XCTAssertEqual(published[RealGateway.kid(edDSAToken)]?["alg"], "EdDSA", "the old key, under its old name")
            XCTAssertEqual(published[RealGateway.kid(ed25519Token)]?["alg"], "Ed25519")
            // Both generations of tokens pass; neither passes under the other's name.
            let (old, new) = (try await Self.forwardAuth(gatewayPort, edDSAToken), try await Self.forwardAuth(gatewayPort, ed25519Token))
            XCTAssertEqual(old.status, 200)
            XCTAssertEqual(new.status, 200)
            let oldKey = try PrivateKey(
                pem: String(
                    contentsOf: broker.workDirectory.appendingPathComponent("keys/\(RealGateway.kid(edDSAToken)).pem"), encoding: .utf8),
                algorithm: .edDSA)
            let renamed = try await Self.forwardAuth(gatewayPort, try Self.relabelled(edDSAToken, alg: "Ed25519", key: oldKey))
            XCTAssertEqual(renamed.status, 401)
            let listed = try broker.run(["keys", "list"]).stdout
            XCTAssertEqual(listed.components(separatedBy: " Ed25519 ").count - 1, 2, listed)
            XCTAssertEqual(listed.components(separatedBy: " EdDSA ").count - 1, 2, listed)
        }

        broker.environment["BROKER_SIGNING_ALG"] = nil
        try await phase { brokerPort, gatewayPort in
            let again = try await RealGateway.accessToken(broker: brokerPort, org: "org1")
            XCTAssertEqual(RealGateway.part(again, 0)["alg"] as? String, "EdDSA")
            XCTAssertEqual(RealGateway.kid(again), RealGateway.kid(edDSAToken), "the old active key signs again")
            let published = try await Self.jwks(brokerPort)
            XCTAssertEqual(published.count, 4, "nothing added, nothing withdrawn")
            let (earlier, now) = (try await Self.forwardAuth(gatewayPort, ed25519Token), try await Self.forwardAuth(gatewayPort, again))
            XCTAssertEqual(earlier.status, 200)
            XCTAssertEqual(now.status, 200)
        }
    }
}
