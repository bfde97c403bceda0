import BrokerCrypto
import BrokerValidator
import Foundation
import XCTest

/// Strings from the network reach log lines only through `LogText`: one event, one line,
/// whatever a token or a JWKS holds.
final class LogTextTests: XCTestCase {
    func testControlCharactersSeparatorsAndBidiOverridesAreEscaped() {
        XCTAssertEqual(LogText.escaped("ES256"), "ES256")
        XCTAssertEqual(LogText.escaped("a\nb"), #"a\u{A}b"#)
        XCTAssertEqual(LogText.escaped("a\r\n\t\u{0}\u{1b}[31m"), #"a\u{D}\u{A}\u{9}\u{0}\u{1B}[31m"#)
        XCTAssertEqual(LogText.escaped("\u{7f}\u{85}\u{9f}"), #"\u{7F}\u{85}\u{9F}"#)
        XCTAssertEqual(LogText.escaped("x\u{2028}y\u{2029}"), #"x\u{2028}y\u{2029}"#)
        XCTAssertEqual(LogText.escaped("evil\u{202E}gpj.exe"), #"evil\u{202E}gpj.exe"#)
        // A backslash is escaped too, so that an escape in the input cannot pass for one of ours.
        XCTAssertEqual(LogText.escaped(#"a\u{A}b"#), #"a\\u{A}b"#)
        XCTAssertEqual(LogText.escaped("café ✓"), "café ✓")
        XCTAssertEqual(LogText.escaped(String(repeating: "x", count: 10), limit: 4), "xxxx…")
        XCTAssertTrue(LogText.isSafe("alice"))
        XCTAssertFalse(LogText.isSafe("al\nice"))
        for _ in 0..<500 {
            let scalars = (0..<20).compactMap { _ in Unicode.Scalar(UInt32.random(in: 0...0x3000)) }
            var text = ""
            text.unicodeScalars.append(contentsOf: scalars)
            let escaped = LogText.escaped(text)
            XCTAssertFalse(escaped.unicodeScalars.contains { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) })
            XCTAssertFalse(escaped.contains("\u{2028}") || escaped.contains("\u{2029}"))
        }
    }

    func testARejectionQuotingAHostileAlgIsOneLine() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let factory = TokenFactory(now: Int64(now.timeIntervalSince1970))
        let checks = AccessTokenChecks(issuer: TokenFactory.issuer, leeway: 30)
        let token = try factory.token(header: factory.header { $0["alg"] = "ES256\nFORGED" }, claims: factory.claims())
        XCTAssertThrowsError(try checks.verify(token, audience: "cluster1", now: now) { _ in nil }) { error in
            XCTAssertEqual("\(error)", #"algorithm ES256\u{A}FORGED is not allowed"#)
        }
    }

    func testSkippedJWKSEntriesAreDescribedOnOneLine() throws {
        var hostile = JWKSDocuments.jwk(TestKeys.es256, kid: "k\nFORGED kid")
        hostile["alg"] = "ES256\r\nFORGED alg"
        let set = try JWKSKeySet(
            document: JWKSDocuments.document([JWKSDocuments.jwk(TestKeys.rs256), hostile]), maximumSize: 1 << 20)
        XCTAssertEqual(set.skipped.count, 1)
        let line = "\(set.skipped[0])"
        XCTAssertFalse(line.contains("\n") || line.contains("\r"), line)
        XCTAssertTrue(line.hasPrefix(#"k\u{A}FORGED kid: "#), line)
    }
}
