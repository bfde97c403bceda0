/// Reads the freshness a `Cache-Control` header grants (RFC 9111 section 5.2.2).
enum CacheControl {
    /// `max-age` in seconds; 0 for `no-cache` or `no-store` (the cache then applies its floor);
    /// nil when the header says nothing about freshness.
    static func maxAge(_ values: [String]) -> Int? {
        var result: Int?
        for directive in values.joined(separator: ",").split(separator: ",") {
            let parts = directive.split(separator: "=", maxSplits: 1)
            let name = parts[0].trimmingSpaces().lowercased()
            switch name {
            case "no-cache", "no-store":
                return 0
            case "max-age" where parts.count == 2:
                var text = parts[1].trimmingSpaces()
                if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 { text = String(text.dropFirst().dropLast()) }
                // A huge value saturates rather than being ignored: the cache caps it anyway.
                guard !text.isEmpty, text.allSatisfy(\.isASCIIDigit) else { continue }
                result = Int(text) ?? Int.max
            default:
                continue
            }
        }
        return result
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
