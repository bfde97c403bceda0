import BrokerCrypto
import Foundation
import XCTest

/// One spelling per token: every transformation that keeps a signature valid while changing the
/// token's bytes (a second token with the same `jti`) is refused. Each test builds the twin with
/// its own arithmetic, independent of the code under test.
final class JOSEMalleabilityTests: XCTestCase {
    private static let es256 = try! PrivateKey.generate(.es256)
    private static let edDSA = try! PrivateKey.generate(.edDSA)

    private let claims = Array(#"{"sub":"alice","exp":1767225600,"jti":"j1"}"#.utf8)

    // MARK: ES256: low S only

    /// The P-256 group order n, big-endian.
    static let p256Order: [UInt8] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    ]

    /// ⌊n/2⌋ of P-256, big-endian.
    static let p256HalfOrder: [UInt8] = [
        0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
    ]

    /// R||(n − S): the other valid spelling of an ECDSA signature.
    static func otherS(_ signature: [UInt8]) -> [UInt8] {
        Array(signature[0..<32]) + BigEndian.subtract(p256Order, Array(signature[32..<64]))
    }

    static func isLowS(_ signature: [UInt8]) -> Bool {
        !BigEndian.greater(Array(signature[32..<64]), p256HalfOrder)
    }

    func testTheSignerEmitsOnlyLowS() throws {
        // OpenSSL picks a high S half of the time: 200 signatures all low is no accident.
        for index in 0..<200 {
            let message = Array("message \(index)".utf8)
            let signature = try Self.es256.sign(message)
            XCTAssertTrue(Self.isLowS(signature), "signature \(index) has a high S")
            XCTAssertTrue(Self.es256.publicKey.verify(signature: signature, message: message))
        }
    }

    func testTheHighSTwinOfAValidTokenIsRefused() throws {
        let token = try JWSSigner(key: Self.es256, kid: "k").sign(payload: claims)
        let parts = token.split(separator: ".").map(String.init)
        let signature = try XCTUnwrap(Base64URL.decode(parts[2]))
        let twin = Self.otherS(signature)
        XCTAssertNotEqual(twin, signature)
        XCTAssertFalse(Self.isLowS(twin))
        let twinToken = "\(parts[0]).\(parts[1]).\(Base64URL.encode(twin))"
        XCTAssertTrue(try CompactJWS.parse(token).verify(with: Self.es256.publicKey))
        XCTAssertFalse(try CompactJWS.parse(twinToken).verify(with: Self.es256.publicKey), "high-S twin accepted")
        XCTAssertThrowsError(try CompactJWS.parse(twinToken).checkSignature(with: Self.es256.publicKey)) { error in
            XCTAssertEqual(error as? JWSError, .invalidSignature)
        }
    }

    func testOpenSSLStillAcceptsTheHighSTwinSoTheRefusalIsOurs() throws {
        // The twin is a mathematically valid ECDSA signature: the refusal above is the low-S
        // rule, not a broken twin. OpenSSL's own verifier (DER, no low-S rule) accepts it.
        let message = Array("twin".utf8)
        let twin = Self.otherS(try Self.es256.sign(message))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("malleability-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data(try Self.es256.publicKey.spkiPEM().utf8).write(to: directory.appendingPathComponent("pub.pem"))
        try Data(message).write(to: directory.appendingPathComponent("input"))
        let der = JOSEDER.sequence([JOSEDER.integer(Array(twin[0..<32])), JOSEDER.integer(Array(twin[32..<64]))])
        try Data(der).write(to: directory.appendingPathComponent("sig"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = [
            "dgst", "-sha256", "-verify", directory.appendingPathComponent("pub.pem").path,
            "-signature", directory.appendingPathComponent("sig").path, directory.appendingPathComponent("input").path,
        ]
        process.standardOutput = Pipe()
        process.standardError = Pipe()
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "openssl refused the twin: it is not a valid signature")
        XCTAssertFalse(Self.es256.publicKey.verify(signature: twin, message: message))
    }

    func testDERAndOtherLengthsOfAnES256SignatureInATokenAreRefused() throws {
        let token = try JWSSigner(key: Self.es256, kid: "k").sign(payload: claims)
        let parts = token.split(separator: ".").map(String.init)
        let raw = try XCTUnwrap(Base64URL.decode(parts[2]))
        let der = JOSEDER.sequence([JOSEDER.integer(Array(raw[0..<32])), JOSEDER.integer(Array(raw[32..<64]))])
        let spellings: [[UInt8]] = [
            der,
            [0] + raw,  // R with a leading zero
            Array(raw[0..<32]) + [0] + Array(raw[32...]),  // S with a leading zero
            raw + [0],
            Array(raw.dropLast()),
        ]
        for spelling in spellings {
            let jws = try CompactJWS.parse("\(parts[0]).\(parts[1]).\(Base64URL.encode(spelling))")
            XCTAssertFalse(jws.verify(with: Self.es256.publicKey), "\(spelling.count) bytes accepted")
        }
    }

    // MARK: RS256 and EdDSA: no second integer for one signature

    func testAnRS256SignaturePlusTheModulusIsRefused() throws {
        // A PKCS#1 signature s and s + n are equal mod n; s + n fits the modulus length for
        // some messages. The RFC 7515 A.2 key, whose n is about 0.63 · 2^2048, makes that likely.
        let key = try PrivateKey(pem: JOSEVectors.rsaTraditionalPEM, algorithm: .rs256)
        let modulus = JOSEVectors.b64u(JOSEVectors.rsaN)
        var tried = 0
        for index in 0..<64 {
            let message = Array("message \(index)".utf8)
            let signature = try key.sign(message)
            XCTAssertTrue(key.publicKey.verify(signature: signature, message: message))
            guard let shifted = BigEndian.add(signature, modulus) else { continue }
            tried += 1
            XCTAssertEqual(shifted.count, signature.count)
            XCTAssertFalse(key.publicKey.verify(signature: shifted, message: message), "s + n accepted")
        }
        XCTAssertGreaterThan(tried, 0, "no signature small enough to add n to")
    }

    func testAnEdDSASignatureWithSPlusTheGroupOrderIsRefused() throws {
        // Ed25519 S is little-endian and must be below L = 2^252 + 27742317777372353535851937790883648493
        // (RFC 8032 section 5.1.7); S + L still fits the 32 bytes.
        let order: [UInt8] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
        ]
        for index in 0..<20 {
            let message = Array("message \(index)".utf8)
            let signature = try Self.edDSA.sign(message)
            let s = Array(signature[32..<64])
            let shifted = try XCTUnwrap(BigEndian.add(Array(s.reversed()), Array(order.reversed()))).reversed()
            let twin = Array(signature[0..<32]) + shifted
            XCTAssertTrue(Self.edDSA.publicKey.verify(signature: signature, message: message))
            XCTAssertFalse(Self.edDSA.publicKey.verify(signature: twin, message: message), "S + L accepted")
        }
    }

    // MARK: base64url: one text per byte string

    func testNonCanonicalBase64URLInAnyPartIsRefused() throws {
        for key in [Self.es256, Self.edDSA] {
            let token = try JWSSigner(key: key, kid: "k").sign(payload: claims)
            let parts = token.split(separator: ".").map(String.init)
            for (index, name) in ["header", "payload", "signature"].enumerated() {
                var changed = parts
                guard let respelt = Self.withTrailingBitsSet(parts[index]) else { continue }
                changed[index] = respelt
                // Decoders that ignore the unused bits read the same bytes from both spellings.
                XCTAssertThrowsError(try CompactJWS.parse(changed.joined(separator: ".")), "\(name)") { error in
                    XCTAssertEqual(error as? JWSError, .invalidEncoding(part: name))
                }
                changed = parts
                changed[index] += parts[index].count % 4 == 2 ? "==" : "="
                XCTAssertThrowsError(try CompactJWS.parse(changed.joined(separator: ".")), "\(name) padded")
            }
        }
    }

    /// The same text with the unused low bits of its last character set, or nil if it has none.
    static func withTrailingBitsSet(_ text: String) -> String? {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let unusedBits: Int
        switch text.count % 4 {
        case 2: unusedBits = 4
        case 3: unusedBits = 2
        default: return nil
        }
        guard let last = text.last, let value = alphabet.firstIndex(of: last) else { return nil }
        return String(text.dropLast()) + String(alphabet[value | 1 << (unusedBits - 1)])
    }

    // MARK: JSON: one spelling per integer

    func testOnlyThePlainSpellingOfAnIntegerIsAnInteger() throws {
        XCTAssertEqual(try JSONParser.parse(Array("1000".utf8)).int64, 1000)
        XCTAssertEqual(try JSONParser.parse(Array("0".utf8)).int64, 0)
        XCTAssertEqual(try JSONParser.parse(Array("-7".utf8)).int64, -7)
        for spelling in ["1e3", "1E3", "1000.0", "10e2", "1000e0", "-0", "-0.0", "0e0"] {
            let value = try JSONParser.parse(Array(spelling.utf8))
            XCTAssertNil(value.int64, "\(spelling) read as an integer")
        }
        for invalid in ["+1000", "01000", "0x3e8", "1_000", ".5", "1.", "Infinity"] {
            XCTAssertThrowsError(try JSONParser.parse(Array(invalid.utf8)), invalid)
        }
    }

    func testDuplicateMembersAreRefusedAtAnyDepth() {
        for document in [#"{"exp":1,"exp":1}"#, #"{"a":{"x":1,"x":2}}"#, #"{"exp":1,"\u0065xp":2}"#] {
            XCTAssertThrowsError(try JSONParser.parse(Array(document.utf8)), document) { error in
                XCTAssertTrue("\(error)".contains("duplicate member name"), "\(error)")
            }
        }
    }
}

/// Unsigned big-endian arithmetic on byte strings, for building signature twins in tests.
enum BigEndian {
    /// a − b for a ≥ b of the same length.
    static func subtract(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        precondition(a.count == b.count)
        var result = [UInt8](repeating: 0, count: a.count)
        var borrow = 0
        for index in stride(from: a.count - 1, through: 0, by: -1) {
            var difference = Int(a[index]) - Int(b[index]) - borrow
            borrow = difference < 0 ? 1 : 0
            if difference < 0 { difference += 256 }
            result[index] = UInt8(difference)
        }
        precondition(borrow == 0)
        return result
    }

    /// a + b in a.count bytes, or nil if the sum does not fit.
    static func add(_ a: [UInt8], _ b: [UInt8]) -> [UInt8]? {
        precondition(a.count == b.count)
        var result = [UInt8](repeating: 0, count: a.count)
        var carry = 0
        for index in stride(from: a.count - 1, through: 0, by: -1) {
            let sum = Int(a[index]) + Int(b[index]) + carry
            carry = sum >> 8
            result[index] = UInt8(sum & 0xff)
        }
        return carry == 0 ? result : nil
    }

    static func greater(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        precondition(a.count == b.count)
        for (x, y) in zip(a, b) where x != y { return x > y }
        return false
    }
}
