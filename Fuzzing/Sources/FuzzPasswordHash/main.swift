@testable import BrokerCrypto
import FuzzSupport

// Stored password hashes as they arrive in a Django import or the database: PHC argon2
// strings, Django's "argon2$..." wrapping and "pbkdf2_sha256$...". Only the parsers run here:
// hashing at the costs an input names is what the cost bounds exist to limit, and verifying
// would time out by design. Invariants beyond "no crash":
// - a parsed argon2 hash writes back (phcString) to a string that parses to the same fields;
// - PHC base64 decoding is canonical: what decodes re-encodes to the same text.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPasswordHash(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = fuzzText(data, count)
    let supported = PasswordHasher.isSupportedFormat(text)
    let parsed = PasswordHasher.StoredHash(parsing: text)
    fuzzCheck(supported == (parsed != nil), "isSupportedFormat disagrees with the parser")
    if case .argon2(let argon2, _)? = parsed {
        let written = argon2.phcString
        guard let reread = PasswordHasher.StoredHash.Argon2(phc: Array(written.utf8)[...]) else {
            fuzzCheck(false, "a parsed argon2 hash writes back unparseable")
            return 0
        }
        fuzzCheck(
            reread.variant == argon2.variant && reread.version == argon2.version
                && reread.parameters == argon2.parameters && reread.salt == argon2.salt && reread.tag == argon2.tag,
            "an argon2 hash changed in a round trip")
        _ = parsed?.needsRehash(current: .owaspMinimum)
    }
    let bytes = Array(text.utf8)[...]
    for padding in [PasswordHasher.StoredHash.PHCBase64.Padding.forbidden, .optional] {
        guard let decoded = PasswordHasher.StoredHash.PHCBase64.decode(bytes, padding: padding) else { continue }
        let encoded = PasswordHasher.StoredHash.PHCBase64.encodeUnpadded(decoded)
        let unpadded = text.hasSuffix("==") ? String(text.dropLast(2)) : text.hasSuffix("=") ? String(text.dropLast()) : text
        fuzzCheck(encoded == (padding == .forbidden ? text : unpadded), "PHC base64 is not canonical")
    }
    return 0
}
