@testable import BrokerGateway
import NIOHTTP1
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

    func testHostileCacheControlValuesNeverTrap() {
        // (header values, what they grant): a trap here took every protected cluster down.
        let table: [([String], Int?)] = [
            (["="], nil),
            (["=="], nil),
            (["=5"], nil),
            ([",,,"], nil),
            ([",=,=,"], nil),
            ([" = , = "], nil),
            (["max-age"], nil),
            (["max-age=\""], nil),
            (["max-age=\"5"], nil),
            (["max-age=\"\""], nil),
            (["max-age=\"\\"], nil),
            (["\""], nil),
            (["max-age==5"], nil),
            (["max-age=5=5"], nil),
            (["max-age=5 6"], nil),
            (["max-age=5;x"], nil),
            (["max-age=\u{0}5"], nil),
            (["max-age=٥"], nil),  // a digit, but not an ASCII one
            (["max-age=5\u{301}"], nil),  // a combining mark glued to the digit
            (["=\u{301}max-age=5"], nil),
            (["max-age=+5"], nil),
            (["max-age=0x10"], nil),
            (["max-age=" + String(repeating: "9", count: 10_000)], Int.max),
            ([String(repeating: ",", count: 100_000) + "max-age=7"], 7),
            ([String(repeating: "=", count: 100_000)], nil),
            ([String(repeating: "\"", count: 100_001)], nil),
            (["no-cache=\"set-cookie, max-age=5\", max-age=60"], 0),
            (["private=\"a,b\", max-age=60"], 60),
            (["max-age=60", "max-age=60"], 60),
            (["max-age=60", "max-age=3600"], 0),  // disagreeing directives: stale
            (["MaX-AgE=30"], 30),
            (["\tmax-age=30\t"], 30),
            (["", ""], nil),
        ]
        for (values, expected) in table {
            XCTAssertEqual(CacheControl.maxAge(values), expected, "\(values.map { $0.prefix(40) })")
        }
        // Random bytes, including invalid UTF-8 turned into replacement characters.
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array(" \t,=\"\\max-ge0123456789nocstr\u{0}\u{7f}é".unicodeScalars)
        for _ in 0..<2000 {
            let length = Int.random(in: 0...40, using: &generator)
            var text = String.UnicodeScalarView()
            for _ in 0..<length { text.append(alphabet.randomElement(using: &generator)!) }
            _ = CacheControl.maxAge([String(text)])
        }
    }

    func testTheJWKSURLMustBeHTTPSUnlessLoopback() {
        for url in [
            "https://login.example.org/.well-known/jwks.json", "https://10.0.0.1/jwks", "http://127.0.0.1:8080/jwks",
            "http://127.255.0.9/jwks", "http://localhost:8080/jwks", "http://LOCALHOST/jwks", "http://[::1]:8080/jwks",
            "HTTPS://login.example.org/jwks",
        ] {
            XCTAssertNil(HTTPJWKSSource.refusal(of: url), url)
        }
        for url in [
            "http://login.example.org/jwks", "http://10.0.0.1/jwks", "http://128.0.0.1/jwks", "http://127.1/jwks",
            "http://0x7f.0.0.1/jwks", "http://127.0.0.1.nip.io/jwks", "http://localhost.example.org/jwks",
            "http://[::2]/jwks", "http://[::ffff:127.0.0.1]/jwks", "http://0.0.0.0/jwks", "file:///etc/passwd",
            "ftp://127.0.0.1/jwks", "jwks.json", "", "http:///jwks", "http://127.0.0.01/jwks",
        ] {
            XCTAssertNotNil(HTTPJWKSSource.refusal(of: url), url)
        }
    }

    func testOnlyAnETagAHeaderCanCarryIsSentBack() {
        XCTAssertEqual(HTTPJWKSSource.usableETag(#""v1""#), #""v1""#)
        XCTAssertEqual(HTTPJWKSSource.usableETag(#"W/"abc""#), #"W/"abc""#)
        for etag in [nil, "", "\"v\u{1}\"", "\"v\r\nX-Evil: 1\"", "\"é\"", String(repeating: "a", count: 257)] {
            XCTAssertNil(HTTPJWKSSource.usableETag(etag), "\(String(describing: etag?.prefix(20)))")
        }
    }

    func testBearerToken() {
        XCTAssertEqual(BearerToken.from(["Authorization": "Bearer abc.def.ghi"]), "abc.def.ghi")
        XCTAssertEqual(BearerToken.from(["authorization": "bEaReR   abc "]), "abc", "names and the scheme in any case")
        XCTAssertNil(BearerToken.from([:]))
        XCTAssertNil(BearerToken.from(["Authorization": "Bearer"]))
        XCTAssertNil(BearerToken.from(["Authorization": "Bearer    "]))
        XCTAssertNil(BearerToken.from(["Authorization": "Basic YWxpY2U6cHc="]))
        XCTAssertNil(BearerToken.from(["Authorization": "Bearerabc"]))
        let twice = HTTPHeaders([("Authorization", "Bearer a"), ("AUTHORIZATION", "Bearer a")])
        XCTAssertNil(BearerToken.from(twice))
    }
}
