/// Reads the token of an `Authorization: Bearer <token>` value (RFC 6750 section 2.1); one
/// parser for the broker's routes and the gateway.
///
/// ```swift
/// BearerCredentials.token(fromAuthorization: "Bearer eyJ...")   // "eyJ..."
/// BearerCredentials.token(fromAuthorization: "Basic YWxp")      // nil
/// ```
public enum BearerCredentials {
    /// The token, or nil for another scheme or an empty token. The scheme is case-insensitive.
    public static func token(fromAuthorization value: String) -> String? {
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingSpacesAndTabs()
        return token.isEmpty ? nil : token
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
