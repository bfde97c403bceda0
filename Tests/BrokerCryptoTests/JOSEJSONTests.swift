import BrokerCrypto
import Foundation
import XCTest

/// The JSON writer and the strict parser used for JOSE headers and claims.
final class JOSEJSONTests: XCTestCase {
    // MARK: Writer

    func testWriterProducesCompactJSONWithCommas() {
        var json = JSONWriter()
        json.beginObject()
        json.field("s", "x")
        json.field("i", Int64(-42))
        json.field("t", true)
        json.key("f"); json.bool(false)
        json.key("n"); json.null()
        json.key("d"); json.number(1.5)
        json.key("whole"); json.number(3)
        json.key("nan"); json.number(.nan)
        json.field("a", strings: ["p", "q"])
        json.key("e"); json.beginArray(); json.endArray()
        json.key("o"); json.beginObject(); json.endObject()
        json.key("nested"); json.beginArray(); json.beginObject(); json.field("k", Int64(1)); json.endObject(); json.int(2); json.endArray()
        json.endObject()
        XCTAssertEqual(
            String(decoding: json.bytes, as: UTF8.self),
            #"{"s":"x","i":-42,"t":true,"f":false,"n":null,"d":1.5,"whole":3,"nan":null,"a":["p","q"],"e":[],"o":{},"nested":[{"k":1},2]}"#
        )
        json.withBytes { XCTAssertEqual(Array($0), json.bytes) }
    }

    func testWriterGrowsPastItsInitialCapacity() throws {
        var json = JSONWriter(capacity: 1)
        json.beginArray()
        for index in 0..<1000 { json.string("value-\(index)") }
        json.endArray()
        let parsed = try JSONParser.parse(json.bytes)
        XCTAssertEqual(parsed.array?.count, 1000)
        XCTAssertEqual(parsed.array?.last?.string, "value-999")
    }

    func testIntegerExtremes() throws {
        for value in [Int64.min, Int64.min + 1, -10, -9, -1, 0, 1, 9, 10, 99, 100, Int64.max - 1, Int64.max] {
            var json = JSONWriter()
            json.int(value)
            XCTAssertEqual(String(decoding: json.bytes, as: UTF8.self), String(value))
            XCTAssertEqual(try JSONParser.parse(json.bytes), .integer(value))
        }
    }

    func testEscapingRoundTripsControlCharactersAndNonASCII() throws {
        var all = ""
        for scalar in 0..<0x80 { all.unicodeScalars.append(Unicode.Scalar(UInt8(scalar))) }
        let samples = [all, "quote\" backslash\\ slash/", "é€😀 中文 \u{7f} \u{2028}", "", "\u{0}"]
        for sample in samples {
            var json = JSONWriter()
            json.beginObject()
            json.field(sample, sample)
            json.endObject()
            let text = String(decoding: json.bytes, as: UTF8.self)
            // No raw control character may appear in the output.
            XCTAssertFalse(json.bytes.contains { $0 < 0x20 }, text)
            XCTAssertEqual(try JSONParser.parse(json.bytes), .object([sample: .string(sample)]))
            // Foundation, as an independent parser, reads the same string.
            let foundation = try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: String]
            XCTAssertEqual(foundation?[sample], sample)
        }
        var json = JSONWriter()
        json.string("\u{1}\u{8}\t\n\u{c}\r\u{1f}\"\\")
        XCTAssertEqual(String(decoding: json.bytes, as: UTF8.self), #""\u0001\b\t\n\f\r\u001f\"\\""#)
    }

    func testValueTreeRoundTrip() throws {
        let value = JSONValue.object([
            "z": .array([.integer(1), .number(2.5), .bool(true), .null, .string("s")]),
            "a": .object(["inner": .string("é")]),
        ])
        var json = JSONWriter()
        json.value(value)
        XCTAssertEqual(String(decoding: json.bytes, as: UTF8.self), #"{"a":{"inner":"é"},"z":[1,2.5,true,null,"s"]}"#)
        XCTAssertEqual(try JSONParser.parse(json.bytes), value)
    }

    // MARK: Parser

    func testParsesDocumentsAndAccessors() throws {
        let text = #" { "iss" : "joe", "exp": 1300819380, "ok": true, "aud": ["a", "b"], "x": -0.5e1, "n": null, "esc": "\u00e9\n\/" } "#
        let value = try JSONParser.parse(Array(text.utf8))
        XCTAssertEqual(value["iss"]?.string, "joe")
        XCTAssertEqual(value["exp"]?.int64, 1_300_819_380)
        XCTAssertEqual(value["exp"]?.double, 1_300_819_380)
        XCTAssertEqual(value["ok"]?.bool, true)
        XCTAssertEqual(value["aud"]?.array, [.string("a"), .string("b")])
        XCTAssertEqual(value["x"], .number(-5))
        XCTAssertNil(value["x"]?.int64)
        XCTAssertEqual(value["n"], .null)
        XCTAssertEqual(value["esc"]?.string, "é\n/")
        XCTAssertEqual(value.object?.count, 7)
        XCTAssertNil(value["missing"])
        XCTAssertNil(JSONValue.string("s")["key"])
        XCTAssertEqual(try JSONParser.parse(Array("\"top\"".utf8)), .string("top"))
        // "-0" is not a second spelling of the integer 0 (docs/security.md, "Token encoding").
        XCTAssertEqual(try JSONParser.parse(Array("-0".utf8)), .number(-0.0))
        XCTAssertEqual(try JSONParser.parse(ArraySlice("[1]".utf8)), .array([.integer(1)]))
        XCTAssertEqual(try JSONParser.parse("[1]".utf8), .array([.integer(1)]))
    }

    func testNumbers() throws {
        XCTAssertEqual(try parse("9223372036854775807"), .integer(.max))
        XCTAssertEqual(try parse("-9223372036854775808"), .integer(.min))
        XCTAssertEqual(try parse("9223372036854775808"), .number(9_223_372_036_854_775_808))
        XCTAssertEqual(try parse("-9223372036854775809"), .number(-9_223_372_036_854_775_808))  // the nearest Double
        XCTAssertEqual(try parse("123456789012345678901234567890"), .number(1.2345678901234568e29))
        XCTAssertEqual(try parse("1.0"), .number(1))
        XCTAssertEqual(try parse("1E2"), .number(100))
        XCTAssertEqual(try parse("1e-2"), .number(0.01))
        XCTAssertEqual(try parse("1e400", fails: true), nil, "overflow to infinity is refused")
        XCTAssertEqual(try parse("-1e400", fails: true), nil)
        XCTAssertEqual(try parse(String(repeating: "9", count: 400), fails: true), nil)
        for bad in ["01", "-01", "00", "1.", ".5", "+1", "1e", "1e+", "-", "--1", "1.e3", "0x10", "NaN", "Infinity", "-Infinity", "1_000"] {
            XCTAssertThrowsError(try JSONParser.parse(Array(bad.utf8)), bad)
        }
    }

    func testDuplicateMembersAreRejected() {
        for bad in [#"{"a":1,"a":2}"#, #"{"a":1,"b":{"c":1,"c":1}}"#, #"[{"x":1,"y":2,"x":3}]"#, #"{"a":1,"\u0061":2}"#] {
            XCTAssertThrowsError(try JSONParser.parse(Array(bad.utf8)), bad) { error in
                XCTAssertEqual((error as? JSONParseError)?.reason, "duplicate member name", bad)
            }
        }
        XCTAssertNoThrow(try JSONParser.parse(Array(#"{"a":1,"A":2,"b":{"a":3}}"#.utf8)))
    }

    func testNestingDepthIsLimited() throws {
        let sixteen = String(repeating: "[", count: 16) + String(repeating: "]", count: 16)
        XCTAssertNoThrow(try JSONParser.parse(Array(sixteen.utf8)))
        let seventeen = String(repeating: "[", count: 17) + String(repeating: "]", count: 17)
        XCTAssertThrowsError(try JSONParser.parse(Array(seventeen.utf8)))
        XCTAssertNoThrow(try JSONParser.parse(Array(seventeen.utf8), maxDepth: 17))
        let objects = String(repeating: #"{"a":"#, count: 17) + "1" + String(repeating: "}", count: 17)
        XCTAssertThrowsError(try JSONParser.parse(Array(objects.utf8)))
        // Far beyond any stack: must fail fast, not overflow.
        XCTAssertThrowsError(try JSONParser.parse([UInt8](repeating: UInt8(ascii: "["), count: 1_000_000)))
        XCTAssertThrowsError(try JSONParser.parse(Array(String(repeating: #"{"a":"#, count: 100_000).utf8)))
    }

    func testInvalidUTF8IsRejected() {
        let invalid: [[UInt8]] = [
            [0xc0, 0x80],              // overlong NUL
            [0xc1, 0xbf],              // overlong
            [0xe0, 0x80, 0x80],        // overlong 3-byte
            [0xed, 0xa0, 0x80],        // UTF-16 surrogate encoded in UTF-8
            [0xed, 0xbf, 0xbf],
            [0xf0, 0x80, 0x80, 0x80],  // overlong 4-byte
            [0xf4, 0x90, 0x80, 0x80],  // above U+10FFFF
            [0xf5, 0x80, 0x80, 0x80],
            [0xff],
            [0x80],                    // lone continuation byte
            [0xe2, 0x82],              // truncated
            [0xe2, 0x28, 0xa1],        // bad continuation
        ]
        for bytes in invalid {
            let document = Array("\"".utf8) + bytes + Array("\"".utf8)
            XCTAssertThrowsError(try JSONParser.parse(document), "\(bytes)")
            let escaped = Array(#"["\n"#.utf8) + bytes + Array(#""]"#.utf8)
            XCTAssertThrowsError(try JSONParser.parse(escaped), "after an escape: \(bytes)")
            XCTAssertThrowsError(try JSONParser.parse(bytes), "outside a string: \(bytes)")
        }
        let valid = "\"é€😀\u{10FFFF}\u{FFFD}\""
        XCTAssertEqual(try JSONParser.parse(Array(valid.utf8)), .string("é€😀\u{10FFFF}\u{FFFD}"))
    }

    func testSurrogateEscapes() throws {
        XCTAssertEqual(try parse(#""\uD83D\uDE00""#), .string("😀"))
        XCTAssertEqual(try parse(#""\ud83d\ude00x""#), .string("😀x"))
        for bad in [#""\uD800""#, #""\uDC00""#, #""\uD800\u0041""#, #""\uD800x""#, #""\uDBFF\uD800""#, #""\uD83D""#, #""a\uDE00b""#] {
            XCTAssertThrowsError(try JSONParser.parse(Array(bad.utf8)), bad) { error in
                XCTAssertEqual((error as? JSONParseError)?.reason, "unpaired surrogate escape", bad)
            }
        }
        XCTAssertEqual(try parse(#""\u0000""#), .string("\u{0}"))
    }

    func testStringsRejectRawControlCharactersAndBadEscapes() {
        for bad in ["\"a\nb\"", "\"a\tb\"", "\"\u{0}\"", #""\x41""#, #""\u12""#, #""\u12G4""#, #""\"#, #""abc"#, #""\'""#] {
            XCTAssertThrowsError(try JSONParser.parse(Array(bad.utf8)), bad.debugDescription)
        }
    }

    func testTrailingDataAndOtherSyntaxErrors() {
        let bad = [
            "", " ", "{} x", "{}{}", "1 2", "[1] ]", "{\"a\":1}}", "nul", "tru", "falsey", "[1,]", "{\"a\":1,}",
            "[,1]", "{,}", "{\"a\"}", "{\"a\" 1}", "{a:1}", "{'a':1}", "// c\n{}", "/* c */{}", "[1 2]", "{\"a\":1 \"b\":2}",
            "\u{feff}{}",
        ]
        for text in bad {
            XCTAssertThrowsError(try JSONParser.parse(Array(text.utf8)), text.debugDescription)
        }
        XCTAssertNoThrow(try JSONParser.parse(Array(" \t\r\n{ } \n".utf8)))
    }

    func testErrorsReportOffsetsButNotContent() {
        do {
            _ = try JSONParser.parse(Array(#"{"secret-value":1,"secret-value":2}"#.utf8))
            XCTFail("accepted")
        } catch let error as JSONParseError {
            XCTAssertEqual(error.offset, 18)  // the second name's opening quote
            XCTAssertFalse(error.description.contains("secret"), error.description)
        } catch {
            XCTFail("\(error)")
        }
    }

    private func parse(_ text: String, fails: Bool = false) throws -> JSONValue? {
        if fails {
            XCTAssertThrowsError(try JSONParser.parse(Array(text.utf8)), text)
            return nil
        }
        return try JSONParser.parse(Array(text.utf8))
    }
}
