@testable import BrokerGateway
import HTTPTypes
import XCTest

/// The header parsing under the gateway: what a JWKS response's `Cache-Control` grants, and
/// which `Authorization` headers carry a bearer token.
final class GatewayHeaderParsingTests: XCTestCase {
    func testCacheControlMaxAge() {
        XCTAssertEqual(CacheControl.maxAge(["public, max-age=300"]), 300)
        XCTAssertEqual(CacheControl.maxAge(["max-age=\"60\""]), 60)
        XCTAssertEqual(CacheControl.maxAge(["public", "MAX-AGE = 120"]), 120)
        XCTAssertEqual(CacheControl.maxAge(["no-cache"]), 0)
        XCTAssertEqual(CacheControl.maxAge(["max-age=300, no-store"]), 0)
        XCTAssertEqual(CacheControl.maxAge(["max-age=99999999999999999999999"]), Int.max)
        XCTAssertNil(CacheControl.maxAge([]))
        XCTAssertNil(CacheControl.maxAge(["public"]))
        XCTAssertNil(CacheControl.maxAge(["max-age=-5"]))
        XCTAssertNil(CacheControl.maxAge(["max-age=5s"]))
        XCTAssertNil(CacheControl.maxAge(["max-age="]))
    }

    func testBearerToken() {
        XCTAssertEqual(BearerToken.from([.authorization: "Bearer abc.def.ghi"]), "abc.def.ghi")
        XCTAssertEqual(BearerToken.from([.authorization: "bEaReR   abc "]), "abc")
        XCTAssertNil(BearerToken.from([:]))
        XCTAssertNil(BearerToken.from([.authorization: "Bearer"]))
        XCTAssertNil(BearerToken.from([.authorization: "Bearer    "]))
        XCTAssertNil(BearerToken.from([.authorization: "Basic YWxpY2U6cHc="]))
        XCTAssertNil(BearerToken.from([.authorization: "Bearerabc"]))
        var twice = HTTPFields()
        twice.append(HTTPField(name: .authorization, value: "Bearer a"))
        twice.append(HTTPField(name: .authorization, value: "Bearer a"))
        XCTAssertNil(BearerToken.from(twice))
    }
}
