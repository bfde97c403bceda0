import Testing

@testable import BrokerCrypto

/// Known-answer tests: hashes produced by other implementations must verify here, byte for byte.
@Suite("Password hashes from reference implementations")
struct PasswordVectorTests {
    /// A hasher whose parameters match none of the vectors, so every match reports a rehash.
    let hasher = PasswordHasher(parameters: Argon2idParameters(memoryKiB: 64, iterations: 1, parallelism: 1))

    struct Vector: Sendable, CustomTestStringConvertible {
        let password: String
        let encoded: String
        let source: String
        var testDescription: String { "\(source): \(encoded.prefix(40))…" }
    }

    // MARK: argon2 (libargon2's src/test.c, argon2-cffi's documentation, Django's test_hashers.py)

    static let argon2Vectors: [Vector] = [
        // libargon2 src/test.c, Argon2id v=19. The 64 MiB one is the only expensive vector here.
        Vector(
            password: "password",
            encoded: "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            source: "libargon2 test.c argon2id m=2^16"),
        Vector(
            password: "password",
            encoded: "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
            source: "libargon2 test.c argon2id m=2^8"),
        Vector(
            password: "password",
            encoded: "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc",
            source: "libargon2 test.c argon2id m=2^8 p=2"),
        // libargon2 src/test.c, Argon2i v=19 and v=16 (no "v=" field).
        Vector(
            password: "password",
            encoded: "$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8",
            source: "libargon2 test.c argon2i v=19"),
        Vector(
            password: "password",
            encoded: "$argon2i$v=19$m=256,t=2,p=2$c29tZXNhbHQ$T/XOJ2mh1/TIpJHfCdQan76Q5esCFVoT5MAeIM1Oq2E",
            source: "libargon2 test.c argon2i v=19 p=2"),
        Vector(
            password: "password",
            encoded: "$argon2i$m=256,t=2,p=1$c29tZXNhbHQ$/U3YPXYsSb3q9XxHvc0MLxur+GP960kN9j7emXX8zwY",
            source: "libargon2 test.c argon2i v=16"),
        // argon2-cffi's documentation (low_level.hash_secret, Type.D, hash_len=64).
        Vector(
            password: "secret",
            encoded: "$argon2d$v=19$m=8,t=1,p=1$c29tZXNhbHQ$ba2qC75j0+JAunZZ/L0hZdQgCv+tOieBuKKXSrQiWm7nlkRcK+YqWr0i0m0WABJKelU8qHJp0SZzH0b1Z+ITvQ",
            source: "argon2-cffi argon2d"),
        // Django's tests/auth_tests/test_hashers.py (test_argon2): old hashes with and without "v=".
        Vector(
            password: "secret",
            encoded: "argon2$argon2i$m=8,t=1,p=1$c29tZXNhbHQ$gwQOXSNhxiOxPOA0+PY10P9QFO4NAYysnqRt1GSQLE55m+2GYDt9FEjPMHhP2Cuf0nOEXXMocVrsJAtNSsKyfg",
            source: "Django argon2i without version"),
        Vector(
            password: "secret",
            encoded: "argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q",
            source: "Django argon2i v=19"),
    ]

    @Test("reference argon2 hashes verify and ask for a rehash", arguments: argon2Vectors)
    func argon2VectorVerifies(_ vector: Vector) {
        #expect(PasswordHasher.isSupportedFormat(vector.encoded))
        #expect(hasher.verify(vector.password, against: vector.encoded) == .valid(needsRehash: true))
    }

    @Test(
        "reference argon2 hashes reject a wrong password",
        arguments: argon2Vectors.filter { !$0.encoded.contains("m=65536") })
    func argon2VectorRejectsWrongPassword(_ vector: Vector) {
        #expect(hasher.verify(vector.password + "x", against: vector.encoded) == .invalid)
        #expect(hasher.verify(String(vector.password.dropLast()), against: vector.encoded) == .invalid)
    }

    @Test("libargon2's mismatch vector (hash of \"passwore\") does not verify \"password\"")
    func argon2iMismatchVector() {
        // From libargon2 src/test.c: ARGON2_VERIFY_MISMATCH expected.
        let encoded = "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$8iIuixkI73Js3G1uMbezQXD0b8LG4SXGsOwoQkdAQIM"
        #expect(PasswordHasher.isSupportedFormat(encoded))
        #expect(hasher.verify("password", against: encoded) == .invalid)
    }

    @Test("a fixed salt reproduces libargon2's encoded output exactly")
    func hashingReproducesReferenceEncoding() throws {
        let salt = Array("somesalt".utf8)
        let p1 = PasswordHasher(parameters: Argon2idParameters(memoryKiB: 256, iterations: 2, parallelism: 1))
        #expect(
            try p1.hash("password", salt: salt)
                == "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4")
        let p2 = PasswordHasher(parameters: Argon2idParameters(memoryKiB: 256, iterations: 2, parallelism: 2))
        #expect(
            try p2.hash("password", salt: salt)
                == "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc")
    }

    @Test("a tampered tag does not verify")
    func tamperedTag() {
        let good = "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
        // "8" keeps the unused low bits zero, so only the tag's last byte changes.
        let tampered = good.replacingLastCharacter(with: "8")
        #expect(PasswordHasher.isSupportedFormat(tampered))
        #expect(hasher.verify("password", against: tampered) == .invalid)
        let otherSalt = "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHU$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
        #expect(hasher.verify("password", against: otherSalt) == .invalid)
    }

    // MARK: Django PBKDF2

    static let pbkdf2Vectors: [Vector] = [
        // Django's tests/auth_tests/test_hashers.py (Django 4.1, 390 000 iterations).
        Vector(
            password: "lètmein",
            encoded: "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
            source: "Django test_pbkdf2"),
        Vector(
            password: "lètmein",
            encoded: "pbkdf2_sha256$390000$seasalt2$geC/uZ92nRXDSjSxeoiBqYyRcrLzMm8xK3ro1QS1uo8=",
            source: "Django test_low_level_pbkdf2"),
        Vector(
            password: "lètmein",
            encoded: "pbkdf2_sha1$390000$seasalt2$aDapRanzW8aHTz97v2TcfHzWD+I=",
            source: "Django test_low_level_pbkdf2_sha1"),
        // Django 6.0's default iteration count (the same make_password call); cross-checked with
        // Python's hashlib.pbkdf2_hmac.
        Vector(
            password: "lètmein",
            encoded: "pbkdf2_sha256$1200000$seasalt$6sTlFi4QohxXLuZigqDIUNX8xG9NxrTmV8+flFQdBqE=",
            source: "Django 6.0 make_password"),
        // Generated with Python: base64.b64encode(hashlib.pbkdf2_hmac(digest, password, salt, 1000)).
        Vector(
            password: "pw",
            encoded: "pbkdf2_sha256$1000$salt$CjglNVXON/XHKmtwP5loFOvyQfIDrxRuk9zesDHFVn4=",
            source: "Python hashlib sha256"),
        Vector(
            password: "pw",
            encoded: "pbkdf2_sha1$1000$salt$upWEiptc4R8bQ9fRZ9hBPape0is=",
            source: "Python hashlib sha1"),
        Vector(
            password: "pässwörd🔑",
            encoded: "pbkdf2_sha256$1000$NaCl$jr1Ly6smdZLnKhdudGqLlnRIxXew3bgEnh9C+8rdmgk=",
            source: "Python hashlib sha256, non-ASCII password"),
        Vector(
            password: "",
            encoded: "pbkdf2_sha256$1000$seasalt$XHfRVmyEZRTCcSbqGP00JKv0fRwYHK0ogjPZdSJxCXk=",
            source: "Python hashlib sha256, blank password"),
        // Padding is redundant; a hash copied without it still means the same bytes.
        Vector(
            password: "pw",
            encoded: "pbkdf2_sha256$1000$salt$CjglNVXON/XHKmtwP5loFOvyQfIDrxRuk9zesDHFVn4",
            source: "Python hashlib sha256, unpadded"),
    ]

    @Test("Django PBKDF2 hashes verify and ask for a rehash", arguments: pbkdf2Vectors)
    func pbkdf2VectorVerifies(_ vector: Vector) {
        #expect(PasswordHasher.isSupportedFormat(vector.encoded))
        #expect(hasher.verify(vector.password, against: vector.encoded) == .valid(needsRehash: true))
    }

    @Test(
        "Django PBKDF2 hashes reject a wrong password",
        arguments: pbkdf2Vectors.filter { !$0.encoded.contains("$1200000$") })
    func pbkdf2VectorRejectsWrongPassword(_ vector: Vector) {
        #expect(hasher.verify(vector.password + "z", against: vector.encoded) == .invalid)
        #expect(hasher.verify(" ", against: vector.encoded) == .invalid)
    }

    @Test("a PBKDF2 hash verified with the other digest does not match")
    func pbkdf2DigestMatters() {
        // The sha1 vector's key is 20 bytes: under the sha256 label it is not even well-formed.
        #expect(hasher.verify("pw", against: "pbkdf2_sha256$1000$salt$upWEiptc4R8bQ9fRZ9hBPape0is=") == .invalid)
        // Same iterations, same salt, one iteration off: the count is part of the hash.
        #expect(
            hasher.verify("pw", against: "pbkdf2_sha256$1001$salt$CjglNVXON/XHKmtwP5loFOvyQfIDrxRuk9zesDHFVn4=")
                == .invalid)
    }
}

extension String {
    fileprivate func replacingLastCharacter(with replacement: Character) -> String {
        var copy = self
        copy.removeLast()
        copy.append(replacement)
        return copy
    }
}
