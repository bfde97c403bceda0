import BrokerCore
import BrokerServer
import Foundation
import HTTPTypes
import HummingbirdTesting
import XCTest

/// The real `broker gateway` process against a broker on loopback through emergency rotations:
/// the new key's tokens pass on their first try, although the gateway has just fetched the JWKS
/// and tokens of the withdrawn keys keep arriving.
final class GatewayEmergencyRotationTests: XCTestCase {
    func testNewTokensPassAtOnceAfterAForcedRotationAndRetire() async throws {
        let harness = try await ServerHarness.make()
        let broker = try await LiveServer.broker(harness)
        do {
            let before = try await GatewayTests.login(port: broker.port, username: "alice", organization: "org1")
            // The default --refetch-interval (30 s): the gateway fetches the JWKS as it starts,
            // so every step below happens within 30 s of a fetch.
            let (process, port) = try GatewayTests.startGatewayCommand([
                "gateway", "--jwks", "http://127.0.0.1:\(broker.port)/.well-known/jwks.json",
                "--issuer", harness.services.configuration.issuer, "--cluster", "org1", "--port", "0", "--leeway", "60",
            ])
            defer { process.terminate(); process.waitUntilExit() }
            try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                func status(_ token: String) async throws -> HTTPResponse.Status {
                    try await client.execute(.init("/", method: .get, headers: [.authorization: "Bearer \(token)"])).status
                }
                let warmed = try await status(before)
                XCTAssertEqual(warmed, .ok)

                // The key directory leaked: active and next keys are both compromised. Two
                // forced rotations make a key active that no gateway has seen, and the two
                // compromised keys are withdrawn.
                _ = try await Self.emergencyRotation(harness)
                // A token of a withdrawn key: the gateway accepts it until it next fetches the
                // JWKS (config/gateways/README.md), so its answer is not asserted here.
                _ = try await status(before)
                let after = try await GatewayTests.login(port: broker.port, username: "alice", organization: "org1")
                let first = try await status(after)
                XCTAssertEqual(first, .ok, "the new key's first token passes")
                for _ in 0..<3 {
                    let withdrawn = try await status(before)
                    XCTAssertEqual(withdrawn, .unauthorized, "the fetch for the new key dropped the withdrawn one")
                }

                // Again, right after the gateway fetched for the new key and refused the
                // withdrawn one's tokens.
                _ = try await Self.emergencyRotation(harness)
                let latest = try await GatewayTests.login(port: broker.port, username: "alice", organization: "org1")
                let firstAgain = try await status(latest)
                XCTAssertEqual(firstAgain, .ok, "the second new key's first token passes too")
                let withdrawnAgain = try await status(after)
                XCTAssertEqual(withdrawnAgain, .unauthorized)
            }
        } catch {
            try? await broker.stop()
            try? await harness.shutdown()
            throw error
        }
        try await broker.stop()
        try await harness.shutdown()
    }

    /// Rotates twice with `force` (the new active key was generated a moment ago), then
    /// withdraws the two keys that were active and next before. Returns their kids.
    static func emergencyRotation(_ harness: ServerHarness) async throws -> Set<String> {
        let keys = harness.services.keys
        let before = harness.services.keyRing.snapshot.keys.map(\.metadata).filter { $0.state == .active || $0.state == .next }
        _ = try await keys.rotate(force: true, by: .operator)
        _ = try await keys.rotate(force: true, by: .operator)
        for key in before {
            _ = try await keys.retire(kid: key.kid, by: .operator)
        }
        let published = Set(harness.services.keyRing.snapshot.keys.map(\.metadata.kid))
        XCTAssertTrue(published.isDisjoint(with: before.map(\.kid)))
        return Set(before.map(\.kid))
    }
}
