import BrokerCore
import BrokerCrypto

/// Builds the claims of one access token at time `now` (Unix seconds).
typealias PayloadBuilder = (_ now: Int64) -> [UInt8]

/// A realistic access token, encoded by the broker's own claim encoder (`AccessTokenClaims`),
/// with a fresh random `jti` per token as the issuer does.
enum SampleClaims {
    static func payload(now: Int64) -> [UInt8] {
        AccessTokenClaims(
            issuer: "https://login.example.org", subject: "alice", audience: ["example-cluster"],
            organization: "example-org", organizationRoles: ["owner", "member"], issuedAt: now, notBefore: now,
            expiresAt: now + 3600, tokenID: Base64URL.encode(SecureRandom.identifierBytes(16)), authenticatedAt: now - 60,
            authenticationMethods: ["pwd"], identityProvider: "local", userID: 4242, username: "alice"
        ).encoded()
    }
}
