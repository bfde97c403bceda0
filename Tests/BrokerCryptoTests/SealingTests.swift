import BrokerCrypto
import XCTest

/// AES-256-GCM against the known answers of McGrew and Viega, "The Galois/Counter Mode of
/// Operation (GCM)", test cases 13–16 (the 256-bit keys with 96-bit IVs; also in NIST's GCM
/// validation suite), and the sealed-value format around it: what was altered, or opened with
/// another key, is refused with a typed error.
final class SealingTests: XCTestCase {
    struct Vector {
        var key, nonce, plaintext, additionalData, ciphertext, tag: String
    }

    static let zeros32 = String(repeating: "00", count: 32)
    static let key15 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
    static let plaintext15 =
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        + "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
    static let ciphertext15 =
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        + "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"

    static let vectors: [String: Vector] = [
        "13": Vector(
            key: zeros32, nonce: String(repeating: "00", count: 12), plaintext: "", additionalData: "",
            ciphertext: "", tag: "530f8afbc74536b9a963b4f1c4cb738b"),
        "14": Vector(
            key: zeros32, nonce: String(repeating: "00", count: 12), plaintext: String(repeating: "00", count: 16),
            additionalData: "", ciphertext: "cea7403d4d606b6e074ec5d3baf39d18", tag: "d0d1c8a799996bf0265b98b5d48ab919"),
        "15": Vector(
            key: key15, nonce: "cafebabefacedbaddecaf888", plaintext: plaintext15, additionalData: "",
            ciphertext: ciphertext15, tag: "b094dac5d93471bdec1a502270e3cc6c"),
        "16": Vector(
            key: key15, nonce: "cafebabefacedbaddecaf888", plaintext: String(plaintext15.dropLast(8)),
            additionalData: "feedfacedeadbeeffeedfacedeadbeefabaddad2", ciphertext: String(ciphertext15.dropLast(8)),
            tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
    ]

    func testEncryptionGivesTheKnownCiphertextAndTag() throws {
        for (name, vector) in Self.vectors.sorted(by: { $0.key < $1.key }) {
            let (ciphertext, tag) = try AESGCM.encrypt(
                key: hex(vector.key), nonce: hex(vector.nonce), plaintext: hex(vector.plaintext),
                additionalData: hex(vector.additionalData))
            XCTAssertEqual(ciphertext, hex(vector.ciphertext), "test case \(name)")
            XCTAssertEqual(tag, hex(vector.tag), "test case \(name)")
        }
    }

    func testDecryptionOfTheKnownCiphertextGivesThePlaintext() throws {
        for (name, vector) in Self.vectors.sorted(by: { $0.key < $1.key }) {
            let plaintext = try AESGCM.decrypt(
                key: hex(vector.key), nonce: hex(vector.nonce), ciphertext: hex(vector.ciphertext),
                tag: hex(vector.tag), additionalData: hex(vector.additionalData))
            XCTAssertEqual(plaintext, hex(vector.plaintext), "test case \(name)")
        }
    }

    func testAKnownCiphertextWithAFlippedTagBitIsRefused() {
        let vector = Self.vectors["16"]!
        var tag = hex(vector.tag)
        tag[0] ^= 0x01
        XCTAssertThrowsError(
            try AESGCM.decrypt(
                key: hex(vector.key), nonce: hex(vector.nonce), ciphertext: hex(vector.ciphertext), tag: tag,
                additionalData: hex(vector.additionalData))
        ) { XCTAssertEqual($0 as? SealingError, .authenticationFailed) }
    }

    // MARK: Sealed values

    let context = "broker key ring v1 kid=abc"
    let secret = Array("-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n".utf8)

    func testASealedValueOpensUnderItsKeyAndContext() throws {
        let key = SealingKey.random()
        let sealed = Sealing.seal(secret, under: key, context: context)
        XCTAssertEqual(sealed.first, Sealing.formatVersion)
        XCTAssertEqual(sealed.count, 1 + 12 + secret.count + 16)
        XCTAssertEqual(try Sealing.open(sealed, under: key, context: context), secret)
        XCTAssertNil(findSubsequence(Array("PRIVATE KEY".utf8), in: sealed))
    }

    func testSealingTwiceUsesFreshNonces() {
        let key = SealingKey.random()
        let first = Sealing.seal(secret, under: key, context: context)
        let second = Sealing.seal(secret, under: key, context: context)
        XCTAssertNotEqual(Array(first[1..<13]), Array(second[1..<13]))
        XCTAssertNotEqual(first, second)
    }

    func testEveryAlterationIsRefusedWithATypedError() {
        let key = SealingKey.random()
        let sealed = Sealing.seal(secret, under: key, context: context)
        let regions: [(String, Int)] = [("nonce", 1), ("ciphertext", 13), ("tag", sealed.count - 1)]
        for (region, index) in regions {
            var altered = sealed
            altered[index] ^= 0x80
            XCTAssertThrowsError(try Sealing.open(altered, under: key, context: context), region) {
                XCTAssertEqual($0 as? SealingError, .authenticationFailed, region)
            }
        }
        XCTAssertThrowsError(try Sealing.open(sealed, under: key, context: "broker key ring v1 kid=abd")) {
            XCTAssertEqual($0 as? SealingError, .authenticationFailed, "another context (what the value is)")
        }
        XCTAssertThrowsError(try Sealing.open(Array(sealed.dropLast()), under: key, context: context)) {
            XCTAssertEqual($0 as? SealingError, .authenticationFailed, "truncated")
        }
        XCTAssertThrowsError(try Sealing.open(Array(sealed.prefix(20)), under: key, context: context)) {
            XCTAssertEqual($0 as? SealingError, .malformed)
        }
        XCTAssertThrowsError(try Sealing.open([], under: key, context: context)) {
            XCTAssertEqual($0 as? SealingError, .malformed)
        }
        var otherFormat = sealed
        otherFormat[0] = 2
        XCTAssertThrowsError(try Sealing.open(otherFormat, under: key, context: context)) {
            XCTAssertEqual($0 as? SealingError, .unsupportedFormat(2))
        }
    }

    func testAnotherKeyDoesNotOpenIt() {
        let sealed = Sealing.seal(secret, under: SealingKey.random(), context: context)
        XCTAssertThrowsError(try Sealing.open(sealed, under: SealingKey.random(), context: context)) {
            XCTAssertEqual($0 as? SealingError, .authenticationFailed)
        }
    }

    func testAKeyMustBe32BytesAndPrintsOnlyItsIdentifier() throws {
        XCTAssertThrowsError(try SealingKey(bytes: Array(repeating: 1, count: 16))) {
            XCTAssertEqual($0 as? SealingError, .invalidKeyLength(16))
        }
        let bytes = Array(repeating: UInt8(0xAB), count: 32)
        let key = try SealingKey(bytes: bytes)
        XCTAssertEqual(key.identifier.count, 16)
        XCTAssertEqual(key.identifier, try SealingKey(bytes: bytes).identifier)
        XCTAssertNotEqual(key.identifier, SealingKey.random().identifier)
        XCTAssertEqual("\(key)", "SealingKey(\(key.identifier))")
        XCTAssertFalse("\(key)".lowercased().contains("abab"))
        // SHA-256("broker kek id" || key), first 8 bytes: the same derivation as the docs state.
        XCTAssertEqual(key.identifier, hexString(Array(Digest.sha256(Array("broker kek id".utf8) + bytes).prefix(8))))
    }

    private func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    private func hexString(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    private func findSubsequence(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        for start in 0...(haystack.count - needle.count) where Array(haystack[start..<(start + needle.count)]) == needle {
            return start
        }
        return nil
    }
}
