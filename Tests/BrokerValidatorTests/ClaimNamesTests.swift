import BrokerCrypto
import BrokerValidator
import Foundation
import XCTest

/// `AccessTokenClaims.claimNames` names every claim a token can carry, and nothing else; the
/// RFC 9068 profile's claims are among them, and `client_id` round-trips.
final class ClaimNamesTests: XCTestCase {
    static let populated = AccessTokenClaims(
        issuer: "https://login.example.org", subject: "alice", audience: ["cluster1", "cluster2"],
        organization: "", organizationRoles: ["member"], issuedAt: 1, notBefore: 1, expiresAt: 2,
        tokenID: "jti", authenticatedAt: 1, authenticationMethods: ["pwd"], identityProvider: "github",
        userID: 7, username: "alice", memberships: ["org1": ["member"]],
        clusterRoles: ["cluster1": ["member"], "cluster2": ["owner", "member"]], sessionID: "sid",
        globalRole: "admin", githubLogin: "alice-gh", clientID: "sliderule")

    func testClaimNamesAreExactlyTheKeysOfAFullyPopulatedToken() throws {
        let payload = Self.populated.encoded()
        let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any])
        XCTAssertEqual(Set(parsed.keys), Set(AccessTokenClaims.claimNames))
        XCTAssertEqual(AccessTokenClaims.claimNames.count, Set(AccessTokenClaims.claimNames).count, "no name twice")
        // RFC 9068 section 2.2: required, and the authentication information of section 2.2.1.
        for required in ["iss", "exp", "aud", "sub", "client_id", "iat", "jti", "auth_time", "amr"] {
            XCTAssertNotNil(parsed[required], required)
        }
    }

    func testClientIDRoundTripsAndTokensSignedBeforeItStillParse() throws {
        let json = try JSONParser.parse(Self.populated.encoded())
        guard case .object(let object) = json else { return XCTFail("not an object") }
        XCTAssertEqual(try AccessTokenClaims(json: object), Self.populated)
        var older = object
        older["client_id"] = nil
        XCTAssertNil(try AccessTokenClaims(json: older).clientID)
        older["client_id"] = .integer(7)
        XCTAssertThrowsError(try AccessTokenClaims(json: older), "a client_id that is not a string")
    }
}
