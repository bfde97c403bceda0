import BrokerCore
import BrokerCrypto
import BrokerValidator
import Foundation

/// `broker-bench validator`: what a gateway pays per request. "ours" is a complete
/// `AccessTokenChecks.verify`: parse, header rules, key lookup by `kid` among a published set,
/// signature, every claim (issuer, token type, times, audience). "openssl" is `openssl speed`
/// verify for the same primitive. Single thread, CPU time, like `broker-bench jwt`.
struct ValidatorBenchmark {
    let options: JWTBenchmark.Options

    func run() throws {
        let issuer = "https://login.example.org"
        let checks = AccessTokenChecks(issuer: issuer, leeway: 30)
        for algorithm in options.algorithms {
            // A ring as a gateway sees it: next, active and retired keys of the algorithm.
            let keys = try (0..<3).map { _ in try PrivateKey.generate(algorithm) }
            // Keys rebuilt from their JWKs, as a gateway holds them.
            let published = Dictionary(
                uniqueKeysWithValues: try keys.map { ($0.publicKey.thumbprint, try PublicKey(jwk: $0.publicKey.jwk(kid: nil))) })
            let signer = JWSSigner(key: keys[1], kid: keys[1].publicKey.thumbprint)
            let now = Int64(Date().timeIntervalSince1970)
            let tokens = try (0..<64).map { _ in
                try signer.sign(
                    payload: AccessTokenClaims(
                        issuer: issuer, subject: "alice", audience: ["example-cluster"], organization: "example-org",
                        organizationRoles: ["owner", "member"], issuedAt: now, notBefore: now, expiresAt: now + 3600,
                        tokenID: Base64URL.encode(SecureRandom.identifierBytes(16)), authenticatedAt: now - 60,
                        authenticationMethods: ["pwd"], identityProvider: "local", userID: 4242, username: "alice"
                    ).encoded())
            }
            var index = 0
            var checksum: Int64 = 0
            var best = JWTBenchmark.Best()
            for _ in 0..<options.rounds {
                best.reference(OpenSSLSpeed.measure(algorithm, seconds: options.seconds))
                let rate = try JWTBenchmark.measure(seconds: options.seconds) {
                    let claims = try checks.verify(tokens[index], audience: "example-cluster", now: Date()) { published[$0] }
                    checksum &+= claims.expiresAt
                    index = (index + 1) % tokens.count
                }
                best.ours["validate"] = max(best.ours["validate", default: 0], rate)
            }
            precondition(checksum != 0)
            JWTBenchmark.report(algorithm, "validate", ours: best.ours["validate", default: 0], openssl: best.openssl?.verify)
        }
    }
}
