import BrokerCore
import XCTest

/// The name profile (``AccountName``): what is refused, what is one name, what looks alike.
final class AccountNameTests: XCTestCase {
    private func refusal(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String? {
        do {
            _ = try AccountName(username: text)
            XCTFail("\(text.unicodeScalars.map { String($0.value, radix: 16) }) was accepted", file: file, line: line)
            return nil
        } catch let error as BrokerError {
            XCTAssertEqual(error.code, .invalidUsername, file: file, line: line)
            return error.detail
        } catch {
            XCTFail("\(error)", file: file, line: line)
            return nil
        }
    }

    func testInvisibleFormatAndControlCharactersAreRefused() {
        for invisible in [
            "\u{200D}", "\u{200B}", "\u{200C}", "\u{2060}", "\u{FEFF}", "\u{00AD}",  // joiners, spaces, soft hyphen
            "\u{FE0F}", "\u{FE00}", "\u{E0100}",  // variation selectors
            "\u{E0061}", "\u{E007F}",  // tag characters
            "\u{202E}", "\u{2066}", "\u{061C}",  // bidi controls
            "\u{0007}", "\u{0000}", "\u{007F}", "\u{0085}",  // controls
            " ", "\u{00A0}", "\u{3000}", "\t",  // spaces
            "\u{E000}", "\u{10FFFD}",  // private use
            "\u{0378}",  // unassigned
        ] {
            let detail = refusal("ali" + invisible + "ce")
            XCTAssertNotNil(detail)
        }
        XCTAssertNotNil(refusal("\u{301}alice"), "a combining mark needs a letter before it")
        XCTAssertNotNil(refusal("alice!"))
        XCTAssertNotNil(refusal(""))
    }

    func testOneKeyForCaseWidthAndNormalization() throws {
        let alice = try AccountName(username: "alice")
        for spelling in ["Alice", "ALICE", "ａｌｉｃｅ", "ＡＬＩＣＥ"] {
            XCTAssertEqual(try AccountName(username: spelling).key, alice.key, spelling)
            XCTAssertEqual(AccountName.key(of: spelling), "alice")
        }
        XCTAssertEqual(try AccountName(username: "ａｌｉｃｅ").display, "alice", "fullwidth becomes ordinary")
        XCTAssertEqual(try AccountName(username: "Alice").display, "Alice", "case is kept for display")

        let composed = try AccountName(username: "jos\u{E9}")
        let decomposed = try AccountName(username: "jose\u{301}")
        XCTAssertEqual(decomposed.display.unicodeScalars.map(\.value), composed.display.unicodeScalars.map(\.value))
        XCTAssertEqual(decomposed.key, composed.key)
        XCTAssertEqual(AccountName.key(of: "JOSE\u{301}").utf8.count, "jos\u{E9}".utf8.count)

        // Full case folding, not toLowerCase: ß folds to ss, final sigma to sigma.
        XCTAssertEqual(try AccountName(username: "Straße").key, try AccountName(username: "STRASSE").key)
        XCTAssertEqual(AccountName.key(of: "ΟΔΟΣ"), AccountName.key(of: "οδος"))
        XCTAssertEqual(AccountName.key(of: "οδoς"), AccountName.key(of: "οδoσ"))
    }

    func testLookAlikesShareASkeleton() throws {
        let alice = try AccountName(username: "alice")
        XCTAssertEqual(try AccountName(username: "\u{0430}lice").skeleton, alice.skeleton, "Cyrillic а")
        XCTAssertNotEqual(try AccountName(username: "\u{0430}lice").key, alice.key, "a different name, a look-alike")
        XCTAssertEqual(try AccountName(username: "a1ice").skeleton, alice.skeleton, "digit one")
        XCTAssertEqual(try AccountName(organization: "orgl").skeleton, try AccountName(organization: "ORG1").skeleton)
        XCTAssertEqual(try AccountName(username: "rnary").skeleton, try AccountName(username: "mary").skeleton)
        XCTAssertNotEqual(try AccountName(username: "bob").skeleton, alice.skeleton)
        XCTAssertEqual(try AccountName(organization: "ORG1").key, "org1")
    }

    /// Limits in code points and in bytes, of the name as stored and as compared; never truncated.
    func testLimitsInCodePointsAndBytes() throws {
        XCTAssertNoThrow(try AccountName(username: String(repeating: "a", count: 150)))
        XCTAssertNotNil(refusal(String(repeating: "a", count: 151)))
        // 150 characters of 121 bytes each: the 18,150-byte name that passed the old check.
        let piled = String(repeating: "a" + String(repeating: "\u{301}", count: 60), count: 150)
        XCTAssertEqual(piled.count, 150)
        XCTAssertEqual(piled.utf8.count, 18_150)
        XCTAssertNotNil(refusal(piled))
        // 85 three-byte letters are 255 bytes; 86 are too many, although only 86 code points.
        XCTAssertNoThrow(try AccountName(username: String(repeating: "東", count: 85)))
        XCTAssertNotNil(refusal(String(repeating: "東", count: 86)))
        // Folding can lengthen a name: the folded form is held to the limits too.
        XCTAssertNotNil(refusal(String(repeating: "ß", count: 100)), "200 code points once folded")
        // Marks after a letter are part of real names (Hindi, decomposed Latin).
        XCTAssertEqual(try AccountName(username: "नमस्ते").display, "नमस्ते")
        XCTAssertNoThrow(try AccountName(username: "Zoë-東京"), "mixed scripts are allowed")
    }
}
