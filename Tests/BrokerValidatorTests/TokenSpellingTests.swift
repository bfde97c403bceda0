import BrokerCrypto
import BrokerValidator
import Foundation
import XCTest

/// One spelling per token, through the rules gateways and the broker share: a signature's other
/// valid spelling, a re-encoded part, or an integer claim written another way never passes.
final class TokenSpellingTests: XCTestCase {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    var factory: TokenFactory { TokenFactory(now: Int64(now.timeIntervalSince1970)) }
    let checks = AccessTokenChecks(issuer: TokenFactory.issuer, leeway: 30)

    func verify(_ token: String) throws -> AccessTokenClaims {
        try checks.verify(token, audience: "cluster1", now: now) { kid in
            [TestKeys.es256, TestKeys.rs256, TestKeys.edDSA].first { TestKeys.kid($0) == kid }?.publicKey
        }
    }

    func assertRejected(_ token: String, _ expected: TokenRejection, line: UInt = #line) {
        XCTAssertThrowsError(try verify(token), line: line) { error in
            XCTAssertEqual(error as? TokenRejection, expected, line: line)
        }
    }

    func testTheHighSTwinOfAGoodES256TokenIsRefused() throws {
        for _ in 0..<8 {
            let token = try factory.good(TestKeys.es256)
            XCTAssertNoThrow(try verify(token))
            var parts = token.split(separator: ".").map(String.init)
            let signature = try XCTUnwrap(Base64URL.decode(parts[2]))
            parts[2] = Base64URL.encode(Array(signature[0..<32]) + Self.p256OrderMinus(Array(signature[32...])))
            assertRejected(parts.joined(separator: "."), .badSignature)
        }
    }

    func testARespeltSignatureIsMalformed() throws {
        let token = try factory.good(TestKeys.es256)
        // 64 bytes are 86 characters: the last one carries 4 unused bits, which must be zero.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let last = try XCTUnwrap(alphabet.firstIndex(of: try XCTUnwrap(token.last)))
        let respelt = String(token.dropLast()) + String(alphabet[last | 0x01])
        XCTAssertThrowsError(try verify(respelt)) { error in
            guard case .malformed? = error as? TokenRejection else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try verify(token + "=="))
    }

    func testIntegerClaimsHaveOneSpelling() throws {
        let t = factory.now
        let plain = try payloadText(factory.claims())
        XCTAssertNoThrow(try verify(try signed(plain)))
        let respellings: [(String, String, String)] = [
            ("exp", "\"exp\":\(t + 3600)", "\"exp\":\(t + 3600).0"),
            ("exp", "\"exp\":\(t + 3600)", "\"exp\":\(t + 3600)e0"),
            ("exp", "\"exp\":\(t + 3600)", "\"exp\":\(Double(t + 3600) / 1e9)e9"),
            ("iat", "\"iat\":\(t)", "\"iat\":-0"),
            ("nbf", "\"nbf\":\(t)", "\"nbf\":-0"),
            ("nbf", "\"nbf\":\(t)", "\"nbf\":0e0"),
        ]
        for (claim, original, respelt) in respellings {
            XCTAssertTrue(plain.contains(original), original)
            assertRejected(try signed(plain.replacingOccurrences(of: original, with: respelt)), .missingClaim(claim))
        }
        // Two exp members: which one another library reads is unknowable.
        let twice = plain.replacingOccurrences(of: "\"exp\":\(t + 3600)", with: "\"exp\":\(t + 3600),\"exp\":\(t + 99999)")
        XCTAssertThrowsError(try verify(try signed(twice))) { error in
            XCTAssertEqual(error as? TokenRejection, .malformed("payload is not JSON"))
        }
    }

    private func payloadText(_ claims: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]), as: UTF8.self)
    }

    private func signed(_ payload: String, key: PrivateKey = TestKeys.es256) throws -> String {
        let header = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: factory.header(key), options: [.sortedKeys])))
        let signingInput = "\(header).\(Base64URL.encode(Array(payload.utf8)))"
        return "\(signingInput).\(Base64URL.encode(try key.sign(Array(signingInput.utf8))))"
    }

    /// n − s for the P-256 group order n, big-endian, computed here rather than by the code
    /// under test.
    static func p256OrderMinus(_ s: [UInt8]) -> [UInt8] {
        let order: [UInt8] = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
        ]
        var result = [UInt8](repeating: 0, count: 32)
        var borrow = 0
        for index in stride(from: 31, through: 0, by: -1) {
            let difference = Int(order[index]) - Int(s[index]) - borrow
            borrow = difference < 0 ? 1 : 0
            result[index] = UInt8((difference + 256) % 256)
        }
        return result
    }
}
