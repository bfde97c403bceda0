/// Reads the token of an `Authorization: Bearer <token>` value (RFC 6750 section 2.1); one
/// parser for the broker's routes and the gateway.
///
/// ```swift
/// BearerCredentials.token(fromAuthorization: "Bearer eyJ...")   // "eyJ..."
/// BearerCredentials.token(fromAuthorization: "Basic YWxp")      // nil
/// ```
public enum BearerCredentials {
    /// The token, or nil for another scheme or an empty token. The scheme is case-insensitive.
    ///
    /// The rule: split at the first space after the scheme (leading spaces skipped), the scheme
    /// must be `bearer` in any case, and the rest, without its leading and trailing spaces and
    /// tabs, is the token. Read on the UTF-8 bytes: the gateway runs it on every request, and
    /// splitting the ~1 KB value into Characters cost as much as the rest of a cache hit.
    public static func token(fromAuthorization value: String) -> String? {
        let bytes = value.utf8
        let space = UInt8(ascii: " ")
        guard let schemeStart = bytes.firstIndex(where: { $0 != space }) else { return nil }
        guard let separator = bytes[schemeStart...].firstIndex(of: space) else { return nil }
        let restStart = bytes.index(after: separator)
        // A space followed by a combining mark is one Character, which the Character rule would
        // not split at: such values take that rule itself.
        if restStart != bytes.endIndex, bytes[restStart] >= 0x80 { return tokenSplittingCharacters(value) }
        guard isBearer(bytes[schemeStart..<separator]) else { return nil }
        let rest = bytes[restStart...]
        let isBlank = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
        guard let first = rest.firstIndex(where: { !isBlank($0) }), let last = rest.lastIndex(where: { !isBlank($0) }) else {
            return nil
        }
        // Bounds on ASCII bytes: whole scalars, so the bytes between them are valid UTF-8.
        return String(Substring(rest[first...last]))
    }

    /// The rule above on Characters, as it was first written.
    static func tokenSplittingCharacters(_ value: String) -> String? {
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingSpacesAndTabs()
        return token.isEmpty ? nil : token
    }

    /// `bearer` in any case. Every byte of it is a letter, so `| 0x20` lowers exactly the bytes
    /// that can match it; no other string lowercases to it.
    private static func isBearer(_ scheme: Substring.UTF8View) -> Bool {
        var bytes = scheme.makeIterator()
        for expected in "bearer".utf8 {
            guard let byte = bytes.next(), byte | 0x20 == expected else { return false }
        }
        return bytes.next() == nil
    }
}

extension Substring {
    /// On the UTF-8 bytes: every gateway request carries a ~1 KB token, and trimming it as a
    /// collection of Characters cost more than verifying its signature (BENCHMARKS.md).
    fileprivate func trimmingSpacesAndTabs() -> String {
        let bytes = utf8
        let isBlank = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
        guard let first = bytes.firstIndex(where: { !isBlank($0) }),
            let last = bytes.lastIndex(where: { !isBlank($0) })
        else { return "" }
        return String(self[first...last])
    }
}
