import CArgon2
import COpenSSL

extension PasswordHasher {
    /// A stored password hash, parsed and bounds-checked before any expensive work is done.
    ///
    /// Parsing is strict (canonical base64, no leading zeros, fixed field order): a stored value
    /// that is not exactly what a known encoder writes is more likely corruption than a hash.
    enum StoredHash: Sendable {
        /// An argon2 PHC string; `djangoWrapped` when it came with Django's `argon2` prefix.
        case argon2(Argon2, djangoWrapped: Bool)
        /// Django's `pbkdf2_sha256$…` or `pbkdf2_sha1$…`.
        case pbkdf2(PBKDF2)

        /// Longer than any hash a supported encoder writes; refusing early bounds parsing work.
        static let maximumEncodedLength = 1024

        init?(parsing encoded: String) {
            let bytes = Array(encoded.utf8)
            guard !bytes.isEmpty, bytes.count <= Self.maximumEncodedLength else { return nil }
            // Django marks unusable passwords with a leading "!"; they must never verify.
            guard bytes[0] != UInt8(ascii: "!") else { return nil }

            let djangoArgon2Prefix = Array("argon2$".utf8)
            if bytes.first == UInt8(ascii: "$") {
                guard let argon2 = Argon2(phc: bytes[...]) else { return nil }
                self = .argon2(argon2, djangoWrapped: false)
            } else if bytes.starts(with: djangoArgon2Prefix) {
                // Django stores "argon2" followed by argon2-cffi's PHC string, which starts with "$".
                guard let argon2 = Argon2(phc: bytes[(djangoArgon2Prefix.count - 1)...]) else { return nil }
                self = .argon2(argon2, djangoWrapped: true)
            } else if let pbkdf2 = PBKDF2(django: bytes) {
                self = .pbkdf2(pbkdf2)
            } else {
                return nil
            }
        }

        /// Anything but an argon2id PHC string made exactly as `current` would make it is upgraded
        /// on the next successful login.
        func needsRehash(current: Argon2idParameters) -> Bool {
            switch self {
            case .pbkdf2:
                return true
            case .argon2(let argon2, let djangoWrapped):
                return djangoWrapped
                    || argon2.variant != .id
                    || argon2.version != Argon2.currentVersion
                    || argon2.parameters != current
                    || argon2.salt.count < PasswordHasher.saltLength
                    || argon2.tag.count != PasswordHasher.tagLength
            }
        }
    }
}

// MARK: - argon2

extension PasswordHasher.StoredHash {
    /// An argon2 hash in the PHC string format libargon2 writes:
    /// `$argon2id$v=19$m=65536,t=2,p=1$<salt>$<tag>`, with `v=` absent for version 1.0 hashes.
    struct Argon2: Sendable {
        enum Variant: String, Sendable {
            case d = "argon2d"
            case i = "argon2i"
            case id = "argon2id"

            var cType: argon2_type {
                switch self {
                case .d: return Argon2_d
                case .i: return Argon2_i
                case .id: return Argon2_id
                }
            }
        }

        /// Version 1.3 (`v=19`); version 1.0 (`v=16`) hashes from 2015–2016 still verify.
        static let currentVersion: UInt32 = 0x13
        static let legacyVersion: UInt32 = 0x10
        /// libargon2's minimum salt; the maximum only bounds parsing.
        static let saltLengths = 8...512
        /// libargon2's minimum output length; the maximum only bounds parsing.
        static let tagLengths = 4...512

        var variant: Variant
        var version: UInt32
        var parameters: Argon2idParameters
        var salt: [UInt8]
        var tag: [UInt8]

        init(variant: Variant, version: UInt32, parameters: Argon2idParameters, salt: [UInt8], tag: [UInt8]) {
            self.variant = variant
            self.version = version
            self.parameters = parameters
            self.salt = salt
            self.tag = tag
        }

        init?(phc bytes: ArraySlice<UInt8>) {
            guard bytes.first == UInt8(ascii: "$") else { return nil }
            let fields = bytes.dropFirst().split(separator: UInt8(ascii: "$"), omittingEmptySubsequences: false)
            guard fields.count == 4 || fields.count == 5 else { return nil }
            guard let variant = Variant(rawValue: String(decoding: fields[0], as: UTF8.self)) else { return nil }

            var index = 1
            var version = Self.legacyVersion
            if fields.count == 5 {
                guard let value = ASCIIFields.value(of: "v", in: fields[1]),
                    let parsed = ASCIIFields.decimal(value),
                    parsed == Self.currentVersion || parsed == Self.legacyVersion
                else { return nil }
                version = parsed
                index = 2
            }

            let costs = fields[index].split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
            guard costs.count == 3,
                let m = ASCIIFields.value(of: "m", in: costs[0]).flatMap(ASCIIFields.decimal),
                let t = ASCIIFields.value(of: "t", in: costs[1]).flatMap(ASCIIFields.decimal),
                let p = ASCIIFields.value(of: "p", in: costs[2]).flatMap(ASCIIFields.decimal)
            else { return nil }
            let parameters = Argon2idParameters(memoryKiB: m, iterations: t, parallelism: p)
            guard parameters.isWithinBounds else { return nil }

            guard let salt = PHCBase64.decode(fields[index + 1], padding: .forbidden),
                Self.saltLengths.contains(salt.count),
                let tag = PHCBase64.decode(fields[index + 2], padding: .forbidden),
                Self.tagLengths.contains(tag.count)
            else { return nil }

            self.init(variant: variant, version: version, parameters: parameters, salt: salt, tag: tag)
        }

        var phcString: String {
            var text = "$\(variant.rawValue)$"
            if version != Self.legacyVersion { text += "v=\(version)$" }
            text += "m=\(parameters.memoryKiB),t=\(parameters.iterations),p=\(parameters.parallelism)$"
            text += PHCBase64.encodeUnpadded(salt) + "$" + PHCBase64.encodeUnpadded(tag)
            return text
        }

        func matches(_ password: String) -> Bool {
            guard let computed = try? computeTag(password, length: tag.count) else { return false }
            return PasswordHasher.constantTimeEquals(computed, tag)
        }

        /// Runs argon2 with this hash's variant, version, costs and salt.
        ///
        /// One thread whatever the lane count: callers bound concurrency by counting hashes in
        /// flight, and a hash that spawned `p` threads would quietly multiply that bound. The lane
        /// count, not the thread count, determines the output.
        func computeTag(_ password: String, length: Int) throws -> [UInt8] {
            var passwordBytes = Array(password.utf8)
            defer { PasswordHasher.wipe(&passwordBytes) }
            guard passwordBytes.count <= Int(UInt32.max), salt.count <= Int(UInt32.max),
                Self.tagLengths.contains(length)
            else { throw PasswordHashingError.argon2Failed(code: ARGON2_INCORRECT_PARAMETER.rawValue) }

            var saltBytes = salt
            var output = [UInt8](repeating: 0, count: length)
            let code = passwordBytes.withUnsafeMutableBufferPointer { passwordBuffer in
                saltBytes.withUnsafeMutableBufferPointer { saltBuffer in
                    output.withUnsafeMutableBufferPointer { outputBuffer in
                        var context = argon2_context(
                            out: outputBuffer.baseAddress,
                            outlen: UInt32(outputBuffer.count),
                            pwd: passwordBuffer.baseAddress,
                            pwdlen: UInt32(passwordBuffer.count),
                            salt: saltBuffer.baseAddress,
                            saltlen: UInt32(saltBuffer.count),
                            secret: nil,
                            secretlen: 0,
                            ad: nil,
                            adlen: 0,
                            t_cost: parameters.iterations,
                            m_cost: parameters.memoryKiB,
                            lanes: parameters.parallelism,
                            threads: 1,
                            version: version,
                            allocate_cbk: nil,
                            free_cbk: nil,
                            flags: 0  // ARGON2_DEFAULT_FLAGS
                        )
                        return argon2_ctx(&context, variant.cType)
                    }
                }
            }
            guard code == ARGON2_OK.rawValue else { throw PasswordHashingError.argon2Failed(code: code) }
            return output
        }
    }
}

// MARK: - Django PBKDF2

extension PasswordHasher.StoredHash {
    /// Django's `pbkdf2_<digest>$<iterations>$<salt>$<base64 derived key>`.
    ///
    /// The salt is used as the UTF-8 bytes of its text, as Django does, and the derived key is as
    /// long as the digest (Django's default `dklen`).
    struct PBKDF2: Sendable {
        enum Digest: Sendable {
            case sha256
            case sha1

            var byteCount: Int {
                switch self {
                case .sha256: return 32
                case .sha1: return 20
                }
            }

            var evp: OpaquePointer? {
                switch self {
                case .sha256: return EVP_sha256()
                case .sha1: return EVP_sha1()
                }
            }
        }

        /// Django 6.0 uses 1.2 million; ten million is seconds of CPU per attempt, past which a
        /// stored value is an attack on availability rather than a password.
        static let iterationRange: ClosedRange<UInt32> = 1...10_000_000
        static let maximumSaltLength = 256

        var digest: Digest
        var iterations: UInt32
        var salt: [UInt8]
        var derivedKey: [UInt8]

        init?(django bytes: [UInt8]) {
            let fields = bytes.split(separator: UInt8(ascii: "$"), omittingEmptySubsequences: false)
            guard fields.count == 4 else { return nil }
            switch String(decoding: fields[0], as: UTF8.self) {
            case "pbkdf2_sha256": digest = .sha256
            case "pbkdf2_sha1": digest = .sha1
            default: return nil
            }
            guard let iterations = ASCIIFields.decimal(fields[1]), Self.iterationRange.contains(iterations),
                !fields[2].isEmpty, fields[2].count <= Self.maximumSaltLength,
                let derivedKey = PHCBase64.decode(fields[3], padding: .optional),
                derivedKey.count == digest.byteCount
            else { return nil }
            self.iterations = iterations
            self.salt = Array(fields[2])
            self.derivedKey = derivedKey
        }

        func matches(_ password: String) -> Bool {
            guard let computed = derive(password) else { return false }
            return PasswordHasher.constantTimeEquals(computed, derivedKey)
        }

        func derive(_ password: String) -> [UInt8]? {
            var passwordBytes = Array(password.utf8)
            defer { PasswordHasher.wipe(&passwordBytes) }
            guard passwordBytes.count <= Int(Int32.max) else { return nil }
            var output = [UInt8](repeating: 0, count: digest.byteCount)
            let status = passwordBytes.withUnsafeBytes { passwordBuffer in
                salt.withUnsafeBufferPointer { saltBuffer in
                    output.withUnsafeMutableBufferPointer { outputBuffer in
                        PKCS5_PBKDF2_HMAC(
                            passwordBuffer.baseAddress?.assumingMemoryBound(to: CChar.self),
                            Int32(passwordBuffer.count),
                            saltBuffer.baseAddress,
                            Int32(saltBuffer.count),
                            Int32(iterations),
                            digest.evp,
                            Int32(outputBuffer.count),
                            outputBuffer.baseAddress
                        )
                    }
                }
            }
            return status == 1 ? output : nil
        }
    }
}

// MARK: - Field parsing

extension PasswordHasher.StoredHash {
    /// The small ASCII grammar of PHC parameter fields (`key=decimal`).
    enum ASCIIFields {
        /// The value of `key=value`, or nil if the field has another key.
        static func value(of key: Character, in field: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
            guard let keyByte = key.asciiValue, field.count >= 2,
                field[field.startIndex] == keyByte,
                field[field.startIndex + 1] == UInt8(ascii: "=")
            else { return nil }
            return field.dropFirst(2)
        }

        /// A canonical decimal (no sign, no leading zero) that fits in 32 bits.
        static func decimal(_ digits: ArraySlice<UInt8>) -> UInt32? {
            guard !digits.isEmpty, digits.count <= 10 else { return nil }
            if digits.count > 1, digits.first == UInt8(ascii: "0") { return nil }
            var value: UInt64 = 0
            for byte in digits {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
            }
            return value <= UInt64(UInt32.max) ? UInt32(value) : nil
        }
    }
}
