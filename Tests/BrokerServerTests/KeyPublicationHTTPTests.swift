import BrokerCore
import BrokerCrypto
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

final class KeyPublicationHTTPTests: XCTestCase {
    func testJWKSPemDiscoveryAndHealth() async throws {
        let harness = try await ServerHarness.make(algorithm: .rs256)
        do {
            try await harness.withClient { client in
                let snapshot = harness.services.keyRing.snapshot
                let active = try XCTUnwrap(snapshot.activeSigner(for: .rs256))
                try await client.execute(uri: "/.well-known/jwks.json", method: .get) { response in
                    XCTAssertEqual(response.status, .ok)
                    XCTAssertEqual(response.headers[.contentType], "application/jwk-set+json")
                    XCTAssertNotNil(response.headers[.cacheControl]?.range(of: "max-age="))
                    let set = try JSONDecoder().decode(JWKSet.self, from: Data(response.body.readableBytesView))
                    XCTAssertEqual(set.keys.count, 2, "active and next")
                    XCTAssertEqual(set.keys.first?.kid, active.kid, "active first")
                    for jwk in set.keys {
                        XCTAssertEqual(jwk.kty, "RSA")
                        XCTAssertEqual(jwk.alg, "RS256")
                        XCTAssertEqual(jwk.use, "sig")
                        XCTAssertEqual(try PublicKey(jwk: jwk).thumbprint, jwk.kid)
                    }
                    XCTAssertFalse(String(decoding: response.body.readableBytesView, as: UTF8.self).contains("\"d\""), "no private part")
                }
                try await client.execute(uri: "/auth/pem", method: .get) { response in
                    XCTAssertEqual(response.status, .ok)
                    let pem = String(decoding: response.body.readableBytesView, as: UTF8.self)
                    XCTAssertTrue(pem.hasPrefix("-----BEGIN PUBLIC KEY-----"))
                    XCTAssertFalse(pem.contains("PRIVATE"))
                    XCTAssertEqual(try PublicKey(pem: pem, algorithm: .rs256).thumbprint, active.kid)
                }
                let (status, discovery) = try await client.getJSON("/.well-known/openid-configuration")
                XCTAssertEqual(status, .ok)
                XCTAssertEqual(discovery["issuer"] as? String, "http://127.0.0.1:8080")
                XCTAssertEqual(discovery["jwks_uri"] as? String, "http://127.0.0.1:8080/.well-known/jwks.json")
                XCTAssertNotNil(discovery["token_endpoint"] as? String)
                XCTAssertEqual(discovery["id_token_signing_alg_values_supported"] as? [String], ["RS256", "ES256", "EdDSA", "Ed25519"])
                let (healthStatus, health) = try await client.getJSON("/healthz")
                XCTAssertEqual(healthStatus, .ok)
                XCTAssertEqual(health["status"] as? String, "ok")
            }
        } catch {
            try await harness.shutdown()
            throw error
        }
        try await harness.shutdown()
    }

    func testJWKSConditionalRequestsAndPEMByKid() async throws {
        let harness = try await ServerHarness.make(algorithm: .es256) { $0.jwksMaxAge = 120 }
        do {
            try await harness.withClient { client in
                let snapshot = harness.services.keyRing.snapshot
                var etag = ""
                try await client.execute(uri: "/.well-known/jwks.json", method: .get) { response in
                    XCTAssertEqual(response.headers[.cacheControl], "public, max-age=120")
                    etag = try XCTUnwrap(response.headers[.eTag])
                }
                try await client.execute(uri: "/.well-known/jwks.json", method: .get, headers: [.ifNoneMatch: etag]) { response in
                    XCTAssertEqual(response.status, .notModified)
                    XCTAssertEqual(response.body.readableBytes, 0)
                }
                try await client.execute(uri: "/.well-known/jwks.json", method: .get, headers: [.ifNoneMatch: "\"ring-0\""]) { response in
                    XCTAssertEqual(response.status, .ok)
                }
                let next = try XCTUnwrap(snapshot.metadata(state: .next, algorithm: .es256).first?.kid)
                try await client.execute(uri: "/auth/pem?kid=\(next)", method: .get) { response in
                    XCTAssertEqual(response.status, .ok)
                    let pem = String(decoding: response.body.readableBytesView, as: UTF8.self)
                    XCTAssertEqual(try PublicKey(pem: pem, algorithm: .es256).thumbprint, next)
                }
                let (status, body) = try await client.getJSON("/auth/pem?kid=../../etc/passwd")
                XCTAssertEqual(status, .notFound)
                XCTAssertEqual(body["error"] as? String, "not_found")
            }
        } catch {
            try await harness.shutdown()
            throw error
        }
        try await harness.shutdown()
    }
}
