/// Untrusted text made safe for one log line: the one helper every string from the network
/// (a token's `alg` or `kid`, a JWKS entry, a fetch error) passes through on its way into a log
/// message or metadata value.
///
/// Control characters (C0, DEL, C1), line and paragraph separators and bidirectional overrides
/// are written as `\u{…}`, and a backslash as `\\`, so that a value can neither start a forged
/// log line nor disguise itself, and the escaped form reads back unambiguously. Long values are
/// cut short, marked with `…`.
///
/// ```swift
/// LogText.escaped("ES256\ninfo: allowed")   // "ES256\u{A}info: allowed"
/// logger.info("refused", metadata: ["alg": "\(LogText.escaped(alg, limit: 20))"])
/// ```
public enum LogText {
    /// `text` with every unsafe scalar escaped, at most `limit` scalars of the original kept.
    public static func escaped(_ text: some StringProtocol, limit: Int = 256) -> String {
        var result = ""
        result.reserveCapacity(min(text.utf8.count, limit) + 8)
        var kept = 0
        for scalar in text.unicodeScalars {
            guard kept < limit else {
                result.append("…")
                break
            }
            kept += 1
            if scalar == "\\" {
                result.append("\\\\")
            } else if needsEscape(scalar) {
                result.append("\\u{\(String(scalar.value, radix: 16, uppercase: true))}")
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// Whether `text` would be changed by `escaped(_:limit:)` apart from its length.
    public static func isSafe(_ text: some StringProtocol) -> Bool {
        text.unicodeScalars.allSatisfy { $0 != "\\" && !needsEscape($0) }
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true  // C0, DEL, C1 (NEL among them)
        case 0x2028, 0x2029: true  // line and paragraph separators
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true  // bidirectional controls
        default: false
        }
    }
}
