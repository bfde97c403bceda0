import Foundation
import Testing

@testable import BrokerCrypto

/// Hashing and verifying with the broker's own format. Everything but one test uses parameters
/// far below production's (64 KiB, one pass) so the suite stays cheap on a shared machine.
@Suite("PasswordHasher")
struct PasswordHasherTests {
    static let cheap = Argon2idParameters(memoryKiB: 64, iterations: 1, parallelism: 1)
    let hasher = PasswordHasher(parameters: cheap)

    @Test("hash produces an argon2id PHC string with a 16-byte salt and a 32-byte tag")
    func hashFormat() throws {
        let encoded = try hasher.hash("correct horse battery staple")
        let fields = encoded.split(separator: "$", omittingEmptySubsequences: false)
        #expect(fields.count == 6)
        #expect(encoded.hasPrefix("$argon2id$v=19$m=64,t=1,p=1$"))
        #expect(fields.count == 6 && fields[4].count == 22)  // 16 bytes, unpadded
        #expect(fields.count == 6 && fields[5].count == 43)  // 32 bytes, unpadded
        #expect(fields.suffix(2).allSatisfy { !$0.contains("=") })
        #expect(PasswordHasher.isSupportedFormat(encoded))
    }

    @Test("a hash verifies its password, without a rehash, and nothing else")
    func roundTrip() throws {
        let encoded = try hasher.hash("correct horse battery staple")
        #expect(hasher.verify("correct horse battery staple", against: encoded) == .valid(needsRehash: false))
        #expect(hasher.verify("correct horse battery stapl", against: encoded) == .invalid)
        #expect(hasher.verify("Correct horse battery staple", against: encoded) == .invalid)
        #expect(hasher.verify("", against: encoded) == .invalid)
    }

    @Test("every hash gets its own salt")
    func saltsAreRandom() throws {
        let first = try hasher.hash("same password")
        let second = try hasher.hash("same password")
        #expect(first != second)
        #expect(hasher.verify("same password", against: first) == .valid(needsRehash: false))
        #expect(hasher.verify("same password", against: second) == .valid(needsRehash: false))
    }

    @Test("the default parameters are OWASP's minimum: m=19456, t=2, p=1")
    func defaultParameters() throws {
        let hasher = PasswordHasher()
        #expect(hasher.parameters == .owaspMinimum)
        #expect(Argon2idParameters.owaspMinimum == Argon2idParameters(memoryKiB: 19_456, iterations: 2, parallelism: 1))
        let encoded = try hasher.hash("hunter2")
        #expect(encoded.hasPrefix("$argon2id$v=19$m=19456,t=2,p=1$"))
        #expect(hasher.verify("hunter2", against: encoded) == .valid(needsRehash: false))
    }

    @Test(
        "a hash made with other parameters verifies but asks for a rehash",
        arguments: [
            Argon2idParameters(memoryKiB: 128, iterations: 1, parallelism: 1),
            Argon2idParameters(memoryKiB: 64, iterations: 2, parallelism: 1),
            Argon2idParameters(memoryKiB: 64, iterations: 1, parallelism: 2),
        ])
    func parametersChangedNeedsRehash(_ current: Argon2idParameters) throws {
        let encoded = try hasher.hash("pw")
        let upgraded = PasswordHasher(parameters: current)
        #expect(upgraded.verify("pw", against: encoded) == .valid(needsRehash: true))
        #expect(upgraded.verify("pW", against: encoded) == .invalid)
        // The rehash then satisfies the new parameters.
        let rehashed = try upgraded.hash("pw")
        #expect(upgraded.verify("pw", against: rehashed) == .valid(needsRehash: false))
    }

    @Test("argon2id wrapped in Django's prefix verifies but asks for a rehash")
    func djangoWrappedArgon2idNeedsRehash() throws {
        let encoded = try hasher.hash("lètmein")
        #expect(hasher.verify("lètmein", against: "argon2" + encoded) == .valid(needsRehash: true))
        #expect(hasher.verify("lètmeinz", against: "argon2" + encoded) == .invalid)
    }

    @Test("argon2i and argon2d hashes with our own parameters still ask for a rehash")
    func otherVariantsNeedRehash() throws {
        let salt = [UInt8](repeating: 7, count: 16)
        for variant in [PasswordHasher.StoredHash.Argon2.Variant.i, .d] {
            let stored = PasswordHasher.StoredHash.Argon2(
                variant: variant, version: 0x13, parameters: Self.cheap, salt: salt, tag: [])
            let tag = try stored.computeTag("pw", length: 32)
            let encoded = PasswordHasher.StoredHash.Argon2(
                variant: variant, version: 0x13, parameters: Self.cheap, salt: salt, tag: tag
            ).phcString
            #expect(encoded.hasPrefix("$\(variant.rawValue)$v=19$m=64,t=1,p=1$"))
            #expect(hasher.verify("pw", against: encoded) == .valid(needsRehash: true))
        }
    }

    @Test("an argon2id hash with a short salt or tag asks for a rehash")
    func weakSaltOrTagNeedsRehash() throws {
        let shortSalt = try hasher.hash("pw", salt: Array("8bytes!!".utf8))
        #expect(hasher.verify("pw", against: shortSalt) == .valid(needsRehash: true))

        let salt = [UInt8](repeating: 1, count: 16)
        let stored = PasswordHasher.StoredHash.Argon2(
            variant: .id, version: 0x13, parameters: Self.cheap, salt: salt, tag: [])
        let shortTag = PasswordHasher.StoredHash.Argon2(
            variant: .id, version: 0x13, parameters: Self.cheap, salt: salt,
            tag: try stored.computeTag("pw", length: 16)
        ).phcString
        #expect(hasher.verify("pw", against: shortTag) == .valid(needsRehash: true))
    }

    @Test(
        "unicode passwords round-trip as their exact UTF-8 bytes",
        arguments: [
            "lètmein", "пароль", "密码🔑", "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}", "tab\tnewline\n", "nul\u{0}byte",
        ])
    func unicodePasswords(_ password: String) throws {
        let encoded = try hasher.hash(password)
        #expect(hasher.verify(password, against: encoded) == .valid(needsRehash: false))
        #expect(hasher.verify(password + " ", against: encoded) == .invalid)
    }

    @Test("passwords are not Unicode-normalized: NFC and NFD spellings differ, as in Django")
    func noNormalization() throws {
        let composed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        #expect(composed == decomposed)  // Swift compares canonically...
        #expect(Array(composed.utf8) != Array(decomposed.utf8))  // ...but the bytes differ.
        let encoded = try hasher.hash(composed)
        #expect(hasher.verify(composed, against: encoded) == .valid(needsRehash: false))
        #expect(hasher.verify(decomposed, against: encoded) == .invalid)
    }

    @Test("the empty password hashes and verifies like any other (policy belongs to the caller)")
    func emptyPassword() throws {
        let encoded = try hasher.hash("")
        #expect(hasher.verify("", against: encoded) == .valid(needsRehash: false))
        #expect(hasher.verify(" ", against: encoded) == .invalid)
    }

    @Test(
        "hash refuses parameters libargon2 or the safety ceilings reject",
        arguments: [
            Argon2idParameters(memoryKiB: 64, iterations: 0, parallelism: 1),
            Argon2idParameters(memoryKiB: 64, iterations: 1, parallelism: 0),
            Argon2idParameters(memoryKiB: 7, iterations: 1, parallelism: 1),
            Argon2idParameters(memoryKiB: 64, iterations: 1, parallelism: 9),
            Argon2idParameters(memoryKiB: 4 * 1024 * 1024 + 1, iterations: 1, parallelism: 1),
            Argon2idParameters(memoryKiB: 64, iterations: 101, parallelism: 1),
        ])
    func invalidParametersThrow(_ parameters: Argon2idParameters) {
        #expect(throws: PasswordHashingError.invalidParameters(parameters)) {
            try PasswordHasher(parameters: parameters).hash("pw")
        }
    }

    @Test("parameters encode as JSON with readable keys")
    func parametersCodable() throws {
        // Codable is what lets configuration carry the parameters; decode a literal to pin the keys.
        let json = #"{"memoryKiB":19456,"iterations":2,"parallelism":1}"#
        let decoded = try JSONDecoder().decode(Argon2idParameters.self, from: Data(json.utf8))
        #expect(decoded == .owaspMinimum)
    }
}
