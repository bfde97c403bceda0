import BrokerCrypto
import BrokerValidator
import Foundation
import XCTest

/// The gateway's three answers: identity (200), invalid or missing (401), another cluster (403).
final class GatewayValidatorTests: XCTestCase {
    let clock = ManualWallClock(Date(timeIntervalSince1970: 1_800_000_000))
    var factory: TokenFactory { TokenFactory(now: Int64(clock.now().timeIntervalSince1970)) }

    func makeValidator(_ source: FakeJWKSSource) -> GatewayValidator {
        GatewayValidator(
            keys: JWKSCache(source: source, clock: clock),
            checks: AccessTokenChecks(issuer: TokenFactory.issuer, leeway: 30), clock: clock)
    }

    func testAValidTokenGivesTheAccountAndRoles() async throws {
        let validator = makeValidator(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256, TestKeys.rs256)))
        for key in [TestKeys.es256, TestKeys.rs256] {
            let result = await validator.validate(try factory.good(key), cluster: "cluster1")
            XCTAssertEqual(try result.get().account, "alice")
            XCTAssertEqual(try result.get().roles, ["member", "owner"])
        }
    }

    /// A multi-cluster token of an owner of org A (cluster1) who is a member of org B
    /// (cluster2), as the broker issues it: each gateway gets the roles at its own cluster,
    /// never the other organization's.
    func testAMultiClusterTokenGivesTheRolesAtTheValidatedCluster() async throws {
        let validator = makeValidator(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256)))
        let token = try factory.good {
            $0["aud"] = ["cluster1", "cluster2"]
            $0["org_roles"] = ["member"]
            $0["memberships"] = ["orgA": ["owner", "member"], "orgB": ["member"]]
            $0["cluster_roles"] = ["cluster1": "owner member", "cluster2": "member"]
        }
        let atB = await validator.validate(token, cluster: "cluster2")
        XCTAssertEqual(try atB.get().roles, ["member"])
        XCTAssertEqual(try atB.get().claims.clusterRoles, ["cluster1": ["owner", "member"], "cluster2": ["member"]])
        let atA = await validator.validate(token, cluster: "cluster1")
        XCTAssertEqual(try atA.get().roles, ["owner", "member"])

        // A cluster in aud without an entry gets no roles: org_roles never stands in for a
        // token that carries cluster_roles.
        let withoutEntry = try factory.good {
            $0["aud"] = ["cluster1", "cluster2"]
            $0["org_roles"] = ["member", "owner"]
            $0["cluster_roles"] = ["cluster1": "owner member"]
        }
        let missing = await validator.validate(withoutEntry, cluster: "cluster2")
        XCTAssertEqual(try missing.get().roles, [])
    }

    /// `cluster_roles` has one shape: an object of strings. Anything else is refused (401),
    /// never read as no roles or as org_roles.
    func testAMalformedClusterRolesClaimIs401() async throws {
        let validator = makeValidator(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256)))
        for malformed: Any in [["cluster1": ["owner", "member"]], "owner member", ["cluster1": 1], ["owner"]] {
            let token = try factory.good { $0["cluster_roles"] = malformed }
            let result = await validator.validate(token, cluster: "cluster1")
            XCTAssertEqual(result.refusal, .invalidToken(.missingClaim("cluster_roles")), "\(malformed)")
        }
    }

    func testMissingAndInvalidTokensAre401() async throws {
        let validator = makeValidator(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256)))
        for token in [nil, ""] as [String?] {
            let result = await validator.validate(token, cluster: "cluster1")
            XCTAssertEqual(result.refusal, .missingToken)
            XCTAssertEqual(result.refusal?.httpStatus, 401)
        }
        let invalid = [
            "garbage", try factory.good { $0["exp"] = self.factory.now - 3600 },
            try factory.token(header: factory.header(), claims: factory.claims(), key: TestKeys.attacker),
            try factory.good { $0["iss"] = "https://evil.example"; $0["aud"] = ["cluster2"] },
        ]
        for token in invalid {
            let result = await validator.validate(token, cluster: "cluster1")
            guard case .invalidToken? = result.refusal else { return XCTFail("\(result)") }
            XCTAssertEqual(result.refusal?.httpStatus, 401)
        }
    }

    func testAnotherClustersValidTokenIs403() async throws {
        let validator = makeValidator(FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256)))
        for audience in [["cluster2"], ["*"], ["cluster2", "*"]] {
            let result = await validator.validate(try factory.good { $0["aud"] = audience }, cluster: "cluster1")
            XCTAssertEqual(result.refusal, .otherCluster, "\(audience)")
            XCTAssertEqual(result.refusal?.httpStatus, 403)
        }
    }

    func testTokensThatFailBeforeTheKeyLookupNeverCauseAFetch() async throws {
        let source = FakeJWKSSource(document: JWKSDocuments.document(TestKeys.es256))
        let validator = makeValidator(source)
        let hostile = [
            "garbage", try factory.token(header: factory.header { $0["alg"] = "HS256" }, claims: factory.claims()),
            try factory.token(header: factory.header { $0["jku"] = "https://evil.example/jwks" }, claims: factory.claims()),
            try factory.token(header: factory.header { $0["typ"] = "JWT" }, claims: factory.claims()),
        ]
        for token in hostile {
            _ = await validator.validate(token, cluster: "cluster1")
        }
        XCTAssertEqual(source.fetchCount, 0)
    }
}

extension Result where Failure == GatewayRefusal {
    var refusal: GatewayRefusal? {
        if case .failure(let refusal) = self { return refusal }
        return nil
    }
}
