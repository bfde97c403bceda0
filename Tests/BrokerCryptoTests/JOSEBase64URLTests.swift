import BrokerCrypto
import Foundation
import XCTest

/// Strict unpadded base64url, checked against Foundation's base64 as an independent encoder.
final class JOSEBase64URLTests: XCTestCase {
    private func reference(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    func testRoundTripMatchesFoundationForAllLengths() {
        for length in 0...300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255) }
            let encoded = Base64URL.encode(bytes)
            XCTAssertEqual(encoded, reference(bytes), "length \(length)")
            XCTAssertEqual(encoded.utf8.count, Base64URL.encodedLength(length))
            XCTAssertEqual(Base64URL.decode(encoded), bytes, "length \(length)")
            XCTAssertEqual(Base64URL.decode(ArraySlice(encoded.utf8)), bytes, "length \(length)")
            XCTAssertEqual(Base64URL.decode(Substring(encoded)), bytes, "length \(length)")
        }
    }

    func testKnownValuesAndFullAlphabet() {
        XCTAssertEqual(Base64URL.encode([UInt8]()), "")
        XCTAssertEqual(Base64URL.encode([0xfb, 0xff]), "-_8")
        XCTAssertEqual(Base64URL.encode(Array("f".utf8)), "Zg")
        XCTAssertEqual(Base64URL.encode(Array("fo".utf8)), "Zm8")
        XCTAssertEqual(Base64URL.encode(Array("foo".utf8)), "Zm9v")
        XCTAssertEqual(Base64URL.encode(Array("foob".utf8)[...]), "Zm9vYg")
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        let decoded = Base64URL.decode(alphabet)
        XCTAssertEqual(decoded?.count, 48)
        XCTAssertEqual(decoded.map { Base64URL.encode($0) }, alphabet)
    }

    func testEncodeIntoAppends() {
        var output = Array("prefix.".utf8)
        [UInt8]([1, 2, 3, 4]).withUnsafeBytes { Base64URL.encode(into: &output, $0) }
        XCTAssertEqual(String(decoding: output, as: UTF8.self), "prefix.AQIDBA")
    }

    func testStrictDecodingRejectsOtherSpellings() {
        let rejected = [
            "A",          // one character cannot hold a byte
            "AAAAA",
            "Zg==",       // padding
            "Zg=",
            "Zm8=",
            "++//",       // the standard alphabet
            "ab+c",
            "ab/c",
            " Zm9v",      // whitespace
            "Zm9v\n",
            "Zm 9v",
            "Zm9v.",
            "é",
            "Zh",         // non-zero bits after the last byte (canonical is "Zg")
            "Zm9",        // canonical is "Zm8"
            "AB",
            "AAB",
        ]
        for text in rejected {
            XCTAssertNil(Base64URL.decode(text), text)
            XCTAssertNil(Base64URL.decode(ArraySlice(text.utf8)), text)
        }
        XCTAssertEqual(Base64URL.decode("AAE"), [0x00, 0x01])
        XCTAssertEqual(Base64URL.decode(""), [])
    }

    func testEveryInvalidByteIsRejectedInEveryPosition() {
        let valid = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        for byte in UInt8.min...UInt8.max where !valid.contains(byte) {
            for position in 0..<4 {
                var text = Array("AAAA".utf8)
                text[position] = byte
                XCTAssertNil(Base64URL.decode(text[...]), "byte \(byte) at \(position)")
            }
        }
    }
}
