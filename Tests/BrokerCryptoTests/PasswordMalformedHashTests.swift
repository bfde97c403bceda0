import Foundation
import Testing

@testable import BrokerCrypto

/// Stored values that are not usable hashes: each must give `.invalid`, never a throw or a trap,
/// and never start an expensive computation.
@Suite("Malformed and unsupported password hashes")
struct PasswordMalformedHashTests {
    let hasher = PasswordHasher(parameters: Argon2idParameters(memoryKiB: 64, iterations: 1, parallelism: 1))

    static let salt = "c29tZXNhbHQ"
    static let tag = "nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
    static let pbkdf2Key = "CjglNVXON/XHKmtwP5loFOvyQfIDrxRuk9zesDHFVn4="

    static let malformed: [String] = [
        // Empty, Django unusable passwords (make_password(None) writes "!" + 40 random characters).
        "", "!", "!unusable", "!Xy3rUe8v0o2d2CjZrBz9Tm6Y4hqW1sQ0kLpNaE7f",
        "!$argon2id$v=19$m=256,t=2,p=1$\(salt)$\(tag)",
        // Truncated PHC strings.
        "$", "$argon2id", "$argon2id$", "$argon2id$v=19", "$argon2id$v=19$", "$argon2id$v=19$m=256,t=2,p=1",
        "$argon2id$v=19$m=256,t=2,p=1$", "$argon2id$v=19$m=256,t=2,p=1$\(salt)",
        "$argon2id$v=19$m=256,t=2,p=1$\(salt)$", "$argon2id$v=19$m=256,t=2,p=1$$\(tag)",
        "$argon2id$v=19$m=256,t=2,p=1$\(salt)$\(tag.dropLast())",
        "$argon2id$v=19$m=256,t=2,p=1$\(salt)$\(tag.prefix(5))",  // 3 bytes: below argon2's minimum tag
        // Bad base64: foreign characters, padding, base64url alphabet, non-canonical trailing bits.
        "$argon2id$v=19$m=256,t=2,p=1$c29t*XNhbHQ$\(tag)",
        "$argon2id$v=19$m=256,t=2,p=1$\(salt)=$\(tag)",
        "$argon2id$v=19$m=256,t=2,p=1$\(salt)$\(tag)=",
        "$argon2id$v=19$m=256,t=2,p=1$\(salt)$nf65EOgLrQMR_uIPnA4rEsF5h7TKyQwu9U1bMCHGi-4",
        "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHR$\(tag)",
        "$argon2id$v=19$m=256,t=2,p=1$\(salt)$ñf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        // Salt below libargon2's 8-byte minimum.
        "$argon2id$v=19$m=256,t=2,p=1$c29tZXNh$\(tag)",
        // Absurd or invalid costs: refused before argon2 ever runs.
        "$argon2id$v=19$m=4194305,t=2,p=1$\(salt)$\(tag)",
        "$argon2id$v=19$m=4294967295,t=2,p=1$\(salt)$\(tag)",
        "$argon2id$v=19$m=99999999999,t=2,p=1$\(salt)$\(tag)",
        "$argon2id$v=19$m=256,t=101,p=1$\(salt)$\(tag)",
        "$argon2id$v=19$m=256,t=4294967295,p=1$\(salt)$\(tag)",
        "$argon2id$v=19$m=256,t=0,p=1$\(salt)$\(tag)",
        "$argon2id$v=19$m=256,t=2,p=0$\(salt)$\(tag)",
        "$argon2id$v=19$m=256,t=2,p=16777215$\(salt)$\(tag)",
        "$argon2id$v=19$m=8,t=2,p=2$\(salt)$\(tag)",
        "$argon2id$v=19$m=-1,t=2,p=1$\(salt)$\(tag)",
        "$argon2id$v=19$m=+256,t=2,p=1$\(salt)$\(tag)",
        "$argon2id$v=19$m=0256,t=2,p=1$\(salt)$\(tag)",
        "$argon2id$v=19$m= 256,t=2,p=1$\(salt)$\(tag)",
        "$argon2id$v=19$m=,t=2,p=1$\(salt)$\(tag)",
        // Wrong structure: order, missing or extra fields, unknown versions and variants, case.
        "$argon2id$v=19$t=2,m=256,p=1$\(salt)$\(tag)",
        "$argon2id$v=19$m=256,t=2$\(salt)$\(tag)",
        "$argon2id$v=19$m=256,t=2,p=1,keyid=abc$\(salt)$\(tag)",
        "$argon2id$v=19$m=256,t=2,p=1$\(salt)$\(tag)$extra",
        "$argon2id$v=20$m=256,t=2,p=1$\(salt)$\(tag)",
        "$argon2id$v=$m=256,t=2,p=1$\(salt)$\(tag)",
        "$argon2id$19$m=256,t=2,p=1$\(salt)$\(tag)",
        "$ARGON2ID$v=19$m=256,t=2,p=1$\(salt)$\(tag)",
        "$argon2x$v=19$m=256,t=2,p=1$\(salt)$\(tag)",
        "$argon2ds$v=16$m=8,t=1,p=1$ICAgICAgICA$zgdykk9ZjN5VyrW0LxGw8LmrJ1Z6fqSC+3jPQtn4n0s",
        "argon2id$v=19$m=256,t=2,p=1$\(salt)$\(tag)",
        " $argon2id$v=19$m=256,t=2,p=1$\(salt)$\(tag)",
        "$argon2id$v=19$m=256,t=2,p=1$\(salt)$\(tag) ",
        "$$argon2id$v=19$m=256,t=2,p=1$\(salt)$\(tag)",
        // Django argon2 wrapper gone wrong.
        "argon2$", "argon2$argon2id", "argon2argon2id$v=19$m=256,t=2,p=1$\(salt)$\(tag)",
        "argon2$$argon2id$v=19$m=256,t=2,p=1$\(salt)$\(tag)",
        // Django PBKDF2 gone wrong.
        "pbkdf2_sha256$", "pbkdf2_sha256$1000$salt", "pbkdf2_sha256$1000$salt$",
        "pbkdf2_sha256$0$salt$\(pbkdf2Key)",
        "pbkdf2_sha256$10000001$salt$\(pbkdf2Key)",
        "pbkdf2_sha256$4294967296$salt$\(pbkdf2Key)",
        "pbkdf2_sha256$01000$salt$\(pbkdf2Key)",
        "pbkdf2_sha256$abc$salt$\(pbkdf2Key)",
        "pbkdf2_sha256$1000$$\(pbkdf2Key)",
        "pbkdf2_sha256$1000$salt$\(pbkdf2Key)=",
        "pbkdf2_sha256$1000$salt$=\(pbkdf2Key)",
        "pbkdf2_sha256$1000$salt$\(pbkdf2Key.dropLast(5))",
        "pbkdf2_sha256$1000$salt$\(pbkdf2Key)$",
        "pbkdf2_sha256$1000$sa$lt$\(pbkdf2Key)",
        "pbkdf2_sha256$1000$\(String(repeating: "s", count: 257))$\(pbkdf2Key)",
        "pbkdf2_sha512$1000$salt$\(pbkdf2Key)",
        "PBKDF2_SHA256$1000$salt$\(pbkdf2Key)",
        // Formats the broker deliberately does not accept.
        "md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3",
        "sha1$seasalt$cff36ea83f5706ce9aa7454e63e431fc726b2dc8",
        "88a434c88cca4e900f7874cd98123f43",
        "bcrypt_sha256$$2b$12$LZSJchsWG/DrBy1erNs4eeYo6tZNlLFQmONdTN9wIY1t1bMKR5wsq",
        "$2b$12$LZSJchsWG/DrBy1erNs4eeYo6tZNlLFQmONdTN9wIY1t1bMKR5wsq",
        "scrypt$16384$seasalt$8$1$Qj3+9PPyRjSJIebHnG81TMjsqtaIGxNQG/aEB/NYafTJ7tibgfYz71m0ldQESkXFRkdVCBhhY8mx7rQwite/Pw==",
        // Oversized and binary junk.
        "$argon2id$v=19$m=256,t=2,p=1$\(String(repeating: "A", count: 5000))$\(tag)",
        String(repeating: "$", count: 100_000),
        "\u{0}", "$argon2id\u{0}$v=19$m=256,t=2,p=1$\(salt)$\(tag)",
        "🔑🔑🔑",
    ]

    @Test("malformed or unsupported hashes are invalid and unsupported", arguments: malformed)
    func malformedIsInvalid(_ encoded: String) {
        #expect(!PasswordHasher.isSupportedFormat(encoded))
        #expect(hasher.verify("password", against: encoded) == .invalid)
        #expect(hasher.verify("", against: encoded) == .invalid)
    }

    /// Costs past the ceilings would make one verification take minutes and gigabytes: the
    /// parser refuses them, so `verify` answers without running the hash at all (no timing here:
    /// tests never assert speed; the fuzz target FuzzPasswordHash runs these shapes by the million).
    @Test(
        "absurd costs are refused by the parser",
        arguments: [
            "$argon2id$v=19$m=4194305,t=2,p=1$\(salt)$\(tag)",
            "$argon2id$v=19$m=256,t=101,p=1$\(salt)$\(tag)",
            "pbkdf2_sha256$10000001$salt$\(pbkdf2Key)",
        ])
    func absurdCostsAreRefusedByTheParser(_ encoded: String) {
        #expect(!PasswordHasher.isSupportedFormat(encoded))
        #expect(hasher.verify("password", against: encoded) == .invalid)
    }

    @Test("the ceilings themselves are accepted as formats")
    func boundsAreInclusive() {
        #expect(PasswordHasher.isSupportedFormat("$argon2id$v=19$m=4194304,t=100,p=1$\(Self.salt)$\(Self.tag)"))
        #expect(PasswordHasher.isSupportedFormat("pbkdf2_sha256$10000000$salt$\(Self.pbkdf2Key)"))
        #expect(PasswordHasher.isSupportedFormat("$argon2id$v=19$m=2040,t=1,p=255$\(Self.salt)$\(Self.tag)"))
    }

    @Test("base64 for hashes round-trips every length and matches Foundation's encoder")
    func base64RoundTrip() {
        var generator = SystemRandomNumberGenerator()
        for length in 0...67 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let encoded = PasswordHasher.StoredHash.PHCBase64.encodeUnpadded(bytes)
            let padded = Data(bytes).base64EncodedString()
            #expect(encoded == padded.replacingOccurrences(of: "=", with: ""))
            #expect(PasswordHasher.StoredHash.PHCBase64.decode(Array(encoded.utf8)[...], padding: .forbidden) == bytes)
            #expect(PasswordHasher.StoredHash.PHCBase64.decode(Array(padded.utf8)[...], padding: .optional) == bytes)
            if padded.hasSuffix("=") {
                #expect(PasswordHasher.StoredHash.PHCBase64.decode(Array(padded.utf8)[...], padding: .forbidden) == nil)
            }
        }
    }
}
