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
        let token = parts[1].trimmingCharacters(in: [" ", "\t"])
        return token.isEmpty ? nil : token
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}
