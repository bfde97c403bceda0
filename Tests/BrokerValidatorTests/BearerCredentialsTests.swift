import XCTest

@testable import BrokerValidator

/// The bearer token of an `Authorization` value, read on its bytes, is the token the rule on
/// Characters gives, for any value: common ones, hostile ones, and every short combination of
/// the characters that could make the two readings differ.
final class BearerCredentialsTests: XCTestCase {
    func testTheTokenOfCommonAndHostileValues() {
        let cases: [(String, String?)] = [
            ("Bearer abc.def.ghi", "abc.def.ghi"), ("bEaReR   abc ", "abc"), ("  Bearer abc", "abc"),
            ("Bearer \t abc \t", "abc"), ("Bearer a b", "a b"), ("Bearer", nil), ("Bearer ", nil), ("Bearer    ", nil),
            ("", nil), ("   ", nil), ("Basic YWxpY2U6cHc=", nil), ("Bearerabc", nil), ("Bearer\tabc", nil),
            ("Bearer \u{301}abc", nil), ("\u{212A}earer abc", nil), ("Bearer abc\u{301}", "abc\u{301}"),
            ("Bearer é", "é"), ("Bearer  \u{301}", "\u{301}"),
        ]
        for (value, token) in cases {
            XCTAssertEqual(BearerCredentials.token(fromAuthorization: value), token, value.debugDescription)
            XCTAssertEqual(BearerCredentials.token(fromAuthorization: value), BearerCredentials.tokenSplittingCharacters(value), value.debugDescription)
        }
    }

    func testEveryShortCombinationReadsAsOnCharacters() {
        let pieces = [" ", "\t", "b", "B", "e", "a", "r", "R", "x", ".", "\u{301}", "é", "\u{212A}", "\r\n"]
        var values = ["Bearer "]
        for length in 1...4 {
            var index = Array(repeating: 0, count: length)
            while true {
                let tail = index.map { pieces[$0] }.joined()
                values.append("Bearer" + tail)
                values.append(tail + "Bearer x")
                values.append(tail)
                var position = length - 1
                while position >= 0 {
                    index[position] += 1
                    if index[position] < pieces.count { break }
                    index[position] = 0
                    position -= 1
                }
                if position < 0 { break }
            }
        }
        for value in values {
            XCTAssertEqual(
                BearerCredentials.token(fromAuthorization: value), BearerCredentials.tokenSplittingCharacters(value), value.debugDescription)
        }
    }
}
