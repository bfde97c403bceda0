/// Reads the freshness a `Cache-Control` header grants (RFC 9111 section 5.2.2).
///
/// The header comes from the network, so the parser is total: it reads bytes, never indexes
/// past what it has checked, and anything it cannot read (an empty directive, a lone `=`, an
/// unterminated quoted string, a number too long for `Int`) is skipped or saturates; it never
/// traps. The fuzz target calls `maxAge(_:)`.
enum CacheControl {
    /// `max-age` in seconds; 0 for `no-cache` or `no-store` (the cache then applies its floor);
    /// nil when the header says nothing about freshness.
    ///
    /// Two `max-age` directives that disagree count as `no-cache` (RFC 9111 section 4.2.1
    /// allows treating the response as stale), so that no reading of the header is longer
    /// than another reader's.
    static func maxAge(_ values: [String]) -> Int? {
        var result: Int?
        for value in values {
            for directive in directives(Array(value.utf8)) {
                switch directive.name {
                case "no-cache", "no-store":
                    return 0
                case "max-age":
                    guard let seconds = directive.argument.flatMap(seconds) else { continue }
                    if let earlier = result, earlier != seconds { return 0 }
                    result = seconds
                default:
                    continue
                }
            }
        }
        return result
    }

    /// One directive: its name in lower case and its argument, unquoted, if it has one.
    struct Directive: Equatable {
        var name: String
        var argument: String?
    }

    /// The directives of one header value, in order; malformed pieces are left out.
    static func directives(_ bytes: [UInt8]) -> [Directive] {
        var result: [Directive] = []
        var index = 0
        func skipSpaces() {
            while index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") {
                index += 1
            }
        }
        /// Steps over the rest of a directive that cannot be read, up to the next comma.
        func skipToComma() {
            while index < bytes.count, bytes[index] != UInt8(ascii: ",") { index += 1 }
        }
        while index < bytes.count {
            skipSpaces()
            if index < bytes.count, bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            let nameStart = index
            while index < bytes.count, isTokenByte(bytes[index]) { index += 1 }
            let name = lowercased(bytes[nameStart..<index])
            skipSpaces()
            var argument: String?
            var wellFormed = !name.isEmpty
            if index < bytes.count, bytes[index] == UInt8(ascii: "=") {
                index += 1
                skipSpaces()
                if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                    argument = quotedString(bytes, from: &index)
                    wellFormed = wellFormed && argument != nil
                } else {
                    let start = index
                    while index < bytes.count, isTokenByte(bytes[index]) { index += 1 }
                    argument = String(decoding: bytes[start..<index], as: UTF8.self)
                    wellFormed = wellFormed && index > start
                }
                skipSpaces()
            }
            if index < bytes.count, bytes[index] != UInt8(ascii: ",") {
                wellFormed = false
                skipToComma()
            }
            if wellFormed { result.append(Directive(name: name, argument: argument)) }
        }
        return result
    }

    /// A delta-seconds value (RFC 9111 section 1.2.2): digits only; beyond `Int` it
    /// saturates, as the RFC asks, and the cache caps it anyway.
    private static func seconds(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return Int(text) ?? Int.max
    }

    /// Reads a quoted-string starting at the opening quote; nil if it is not terminated.
    private static func quotedString(_ bytes: [UInt8], from index: inout Int) -> String? {
        var content: [UInt8] = []
        var position = index + 1
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: "\""):
                index = position + 1
                return String(decoding: content, as: UTF8.self)
            case UInt8(ascii: "\\") where position + 1 < bytes.count:
                content.append(bytes[position + 1])
                position += 2
            default:
                content.append(bytes[position])
                position += 1
            }
        }
        index = bytes.count
        return nil
    }

    /// RFC 9110 `tchar`.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    private static func lowercased(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 }, as: UTF8.self)
    }
}
