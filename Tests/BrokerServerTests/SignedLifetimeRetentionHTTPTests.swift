import BrokerCore
import BrokerCrypto
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import XCTest

/// Over HTTP: the JWKS keeps a retired key as long as the tokens it signed can be valid — a
/// key that signed a generation-1 token (1 h) for an hour after its retirement, a key that signed
/// nothing only for clock_skew + key_reload_interval (32 s) — not the 12 h of generation 2.
/// Rotations are done in the keys directory, as `broker keys rotate` does; the server's key
/// maintenance (reload and prune) runs at the injected clock's moments.
final class SignedLifetimeRetentionHTTPTests: XCTestCase {
    func testAPasswordLoginKeepsItsKeyPublishedAnHourAndAnUnusedKeyLeavesAtOnce() async throws {
        let harness = try await ServerHarness.make(algorithm: .es256)
        let services = harness.services
        let clock = harness.clock
        let directory = KeyDirectory(path: services.configuration.keysDirectory, clock: clock)
        let maintenance = KeyRingMaintenance(
            directory: directory, ring: services.keyRing, algorithm: .es256, policy: services.keyPolicy, clock: clock,
            logger: Logger(label: "test"), signedLifetimes: { kids in try await services.signedLifetimes(kids: kids) })
        do {
            try await harness.withClient { client in
                func published(at date: Date) async throws -> Set<String> {
                    clock.advance(by: date.timeIntervalSince(clock.now()))
                    try await maintenance.tick()
                    return try await client.execute(uri: "/.well-known/jwks.json", method: .get) { response in
                        XCTAssertEqual(response.status, .ok)
                        let set = try JSONDecoder().decode(JWKSet.self, from: Data(response.body.readableBytesView))
                        return Set(set.keys.compactMap(\.kid))
                    }
                }
                func rotate() throws -> Date {
                    clock.advance(by: 600)
                    let retiring = services.keyRing.snapshot.activeSigner(for: .es256)!.kid
                    let ring = try directory.rotate(algorithm: .es256, policy: services.keyPolicy, force: false)
                    return try XCTUnwrap(ring.keys.first { $0.metadata.kid == retiring }?.metadata.retiredAt)
                }

                let (status, body) = try await client.postJSON(
                    "/api/org_token/", #"{"username":"alice","password":"correct horse battery staple","org_name":"org1"}"#)
                XCTAssertEqual(status, .ok)
                let access = try XCTUnwrap(body["access"] as? String)
                let headerBytes = try XCTUnwrap(Base64URL.decode(access.split(separator: ".")[0]))
                let header = try JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any]
                let signer = try XCTUnwrap(header?["kid"] as? String)

                let firstRetirement = try rotate()
                let afterFirst = try await published(at: clock.now())
                let unused = services.keyRing.snapshot.activeSigner(for: .es256)!.kid
                XCTAssertNotEqual(unused, signer)
                XCTAssertTrue(afterFirst.isSuperset(of: [signer, unused]))
                let secondRetirement = try rotate()
                let beforeLeeway = try await published(at: secondRetirement.addingTimeInterval(31))
                XCTAssertTrue(beforeLeeway.contains(unused), "a server that has not reloaded may still sign with it")
                let afterLeeway = try await published(at: secondRetirement.addingTimeInterval(32))
                XCTAssertFalse(afterLeeway.contains(unused), "it signed nothing: gone after clock_skew + key_reload_interval")
                XCTAssertTrue(afterLeeway.contains(signer), "its generation-1 token is still valid")

                let lastValid = firstRetirement.addingTimeInterval(3600 + 30 + 2)
                let lastSecond = try await published(at: lastValid.addingTimeInterval(-1))
                XCTAssertTrue(lastSecond.contains(signer))
                let expired = try await published(at: lastValid)
                XCTAssertFalse(expired.contains(signer), "its 1 h token has expired: not kept for generation 2's 12 h")
            }
        } catch {
            try await harness.shutdown()
            throw error
        }
        try await harness.shutdown()
    }
}
