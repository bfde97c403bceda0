import BrokerValidator
import Foundation
import XCTest

/// `AccessTokenClaims.claimNames` is what the OpenID configuration advertises: it must name every
/// claim a token can carry, and nothing else.
final class ClaimNamesTests: XCTestCase {
    func testClaimNamesAreExactlyTheKeysOfAFullyPopulatedToken() throws {
        let claims = AccessTokenClaims(
            issuer: "https://login.example.org", subject: "alice", audience: ["cluster1", "cluster2"],
            organization: "", organizationRoles: ["member"], issuedAt: 1, notBefore: 1, expiresAt: 2,
            tokenID: "jti", authenticatedAt: 1, authenticationMethods: ["pwd"], identityProvider: "github",
            userID: 7, username: "alice", memberships: ["org1": ["member"]],
            clusterRoles: ["cluster1": ["member"], "cluster2": ["owner", "member"]], sessionID: "sid",
            globalRole: "admin", githubLogin: "alice-gh")
        let payload = claims.encoded()
        let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any])
        XCTAssertEqual(Set(parsed.keys), Set(AccessTokenClaims.claimNames))
        XCTAssertEqual(AccessTokenClaims.claimNames.count, Set(AccessTokenClaims.claimNames).count, "no name twice")
    }
}
