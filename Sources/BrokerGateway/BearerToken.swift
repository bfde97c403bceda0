import HTTPTypes

/// The bearer token of a request (RFC 6750 section 2.1), from its one `Authorization` header.
enum BearerToken {
    /// The token, or nil when there is none: no header, another scheme, or an empty value.
    /// Several `Authorization` headers are treated as none: which one the upstream would
    /// honour is unknowable.
    static func from(_ headers: HTTPFields) -> String? {
        let values = headers[values: .authorization]
        guard values.count == 1, let value = values.first else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingSpacesAndTabs()
        return token.isEmpty ? nil : token
    }
}

extension Substring {
    /// On the UTF-8 bytes: every request carries a ~1 KB token, and trimming it as a
    /// collection of Characters cost more than verifying its signature.
    fileprivate func trimmingSpacesAndTabs() -> String {
        let bytes = utf8
        let isBlank = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
        guard let first = bytes.firstIndex(where: { !isBlank($0) }),
            let last = bytes.lastIndex(where: { !isBlank($0) })
        else { return "" }
        return String(self[first...last])
    }
}
