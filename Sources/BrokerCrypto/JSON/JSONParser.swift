/// Why a document was rejected by `JSONParser`, and where.
///
/// The reason never quotes the input: parsed documents are tokens and credentials.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, in words.
    public let reason: String
    /// The byte offset in the input at which the problem was found.
    public let offset: Int

    public init(reason: String, offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// A strict RFC 8259 parser for the small documents JOSE deals in (headers, claims, JWKs).
///
/// Stricter than Foundation on purpose, because each leniency has been used against JWT
/// verifiers: it rejects duplicate object members (two parsers reading different `alg` or `sub`
/// values from one token), invalid UTF-8 and unpaired surrogate escapes (strings that compare
/// differently in different languages), nesting beyond `maxDepth` (stack exhaustion), and
/// anything after the value. Leading zeros, `NaN`, comments and trailing commas are errors too.
/// Only the plain spelling of an integer (`1000`, never `1e3`, `1000.0` or `-0`) is an
/// `.integer`, so integer claims such as `exp` have one spelling each.
///
/// ```swift
/// let header = try JSONParser.parse(Array(#"{"alg":"ES256","kid":"k1"}"#.utf8))
/// header["alg"]?.string   // "ES256"
/// ```
public enum JSONParser {
    /// Parses exactly one JSON value from `bytes`.
    ///
    /// - Parameter maxDepth: the deepest nesting of arrays and objects accepted; a top-level
    ///   object is depth 1.
    /// - Throws: `JSONParseError`.
    public static func parse(_ bytes: some Collection<UInt8>, maxDepth: Int = 16) throws -> JSONValue {
        if let result = bytes.withContiguousStorageIfAvailable({ buffer in
            Result { () throws(JSONParseError) -> JSONValue in try parse(buffer: buffer, maxDepth: maxDepth) }
        }) {
            return try result.get()
        }
        return try Array(bytes).withUnsafeBufferPointer { buffer throws(JSONParseError) in
            try parse(buffer: buffer, maxDepth: maxDepth)
        }
    }

    /// Parses exactly one JSON value from `bytes`. (The common case, without generic dispatch.)
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 16) throws -> JSONValue {
        try bytes.withUnsafeBufferPointer { buffer throws(JSONParseError) in
            try parse(buffer: buffer, maxDepth: maxDepth)
        }
    }

    /// Parses exactly one JSON value from `bytes`.
    public static func parse(_ bytes: ArraySlice<UInt8>, maxDepth: Int = 16) throws -> JSONValue {
        try bytes.withUnsafeBufferPointer { buffer throws(JSONParseError) in
            try parse(buffer: buffer, maxDepth: maxDepth)
        }
    }

    /// Parses exactly one JSON value from the bytes of `buffer`.
    static func parse(buffer: UnsafeBufferPointer<UInt8>, maxDepth: Int) throws(JSONParseError) -> JSONValue {
        var reader = Reader(input: buffer, maxDepth: maxDepth)
        reader.skipWhitespace()
        let value = try reader.parseValue(depth: 0)
        reader.skipWhitespace()
        guard reader.position == buffer.count else { throw reader.error("data after the JSON value") }
        return value
    }
}

/// The parser's cursor over the input.
private struct Reader {
    let input: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var position = 0

    init(input: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.input = input
        self.maxDepth = maxDepth
    }

    func error(_ reason: String) -> JSONParseError {
        JSONParseError(reason: reason, offset: position)
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while position < input.count {
            switch input[position] {
            case 0x20, 0x09, 0x0a, 0x0d: position += 1
            default: return
            }
        }
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard position < input.count else { throw error("unexpected end of input") }
        switch input[position] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character")
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard input.count - position >= count else { throw error("unexpected end of input") }
        for index in 0..<count where input[position + index] != literal.utf8Start[index] {
            throw error("invalid literal")
        }
        position += count
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth)") }
        position += 1  // {
        skipWhitespace()
        if position < input.count, input[position] == UInt8(ascii: "}") {
            position += 1
            return .object([:])
        }
        // Members are collected first and hashed once into a dictionary of the right size:
        // growing a dictionary member by member rehashes it at every doubling.
        var members: [(name: String, value: JSONValue, offset: Int)] = []
        members.reserveCapacity(16)
        while true {
            skipWhitespace()
            guard position < input.count else { throw error("unexpected end of input") }
            guard input[position] == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let nameOffset = position
            let name = try parseString()
            skipWhitespace()
            guard position < input.count, input[position] == UInt8(ascii: ":") else { throw error("expected ':'") }
            position += 1
            skipWhitespace()
            members.append((name, try parseValue(depth: depth), nameOffset))
            skipWhitespace()
            guard position < input.count else { throw error("unexpected end of input") }
            switch input[position] {
            case UInt8(ascii: ","):
                position += 1
            case UInt8(ascii: "}"):
                position += 1
                var object = [String: JSONValue](minimumCapacity: members.count)
                for member in members {
                    // Different JSON libraries keep the first or the last duplicate; a token
                    // with two "alg" or "sub" members could mean one thing to us and another
                    // to a gateway.
                    guard object.updateValue(member.value, forKey: member.name) == nil else {
                        throw JSONParseError(reason: "duplicate member name", offset: member.offset)
                    }
                }
                return .object(object)
            default:
                throw error("expected ',' or '}'")
            }
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth)") }
        position += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if position < input.count, input[position] == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard position < input.count else { throw error("unexpected end of input") }
            switch input[position] {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return .array(elements)
            default: throw error("expected ',' or ']'")
            }
        }
    }

    // MARK: Numbers

    mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = position
        let negative = input[position] == UInt8(ascii: "-")
        if negative { position += 1 }
        guard position < input.count, isDigit(input[position]) else { throw error("expected a digit") }
        // Accumulate negatively so that Int64.min, which has no positive counterpart, fits.
        var accumulator: Int64 = 0
        var fitsInt64 = true
        if input[position] == UInt8(ascii: "0") {
            position += 1
            if position < input.count, isDigit(input[position]) { throw error("leading zero in a number") }
        } else {
            while position < input.count, isDigit(input[position]) {
                let digit = Int64(input[position] &- 48)
                if fitsInt64 {
                    let (shifted, overflow1) = accumulator.multipliedReportingOverflow(by: 10)
                    let (next, overflow2) = shifted.subtractingReportingOverflow(digit)
                    if overflow1 || overflow2 { fitsInt64 = false } else { accumulator = next }
                }
                position += 1
            }
        }
        var isInteger = true
        if position < input.count, input[position] == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            guard position < input.count, isDigit(input[position]) else { throw error("expected a digit after '.'") }
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        if position < input.count, input[position] == UInt8(ascii: "e") || input[position] == UInt8(ascii: "E") {
            isInteger = false
            position += 1
            if position < input.count, input[position] == UInt8(ascii: "+") || input[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard position < input.count, isDigit(input[position]) else { throw error("expected a digit in the exponent") }
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        if isInteger && fitsInt64 {
            // "-0" is left a `.number`: 0 has one integer spelling, so `exp: -0` is no
            // second way to write a claim that readers of `.integer` accept.
            if negative && accumulator != 0 { return .integer(accumulator) }
            if negative { return .number(-0.0) }
            if accumulator != Int64.min { return .integer(-accumulator) }
            // 9223372036854775808 is Int64.min's magnitude: one past Int64.max.
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: input[start..<position]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            throw JSONParseError(reason: "number out of range", offset: start)
        }
        return .number(value)
    }

    @inline(__always)
    func isDigit(_ byte: UInt8) -> Bool {
        byte &- UInt8(ascii: "0") < 10
    }

    // MARK: Strings

    mutating func parseString() throws(JSONParseError) -> String {
        position += 1  // opening quote
        let start = position
        // Fast path: no escapes, so the string is a slice of the input once validated.
        while position < input.count {
            let byte = input[position]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: input[start..<position]), as: UTF8.self)
                position += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("control character in a string") }
            if byte < 0x80 {
                position += 1
            } else {
                try skipUTF8Sequence()
            }
        }
        guard position < input.count else { throw error("unterminated string") }
        // Slow path: copy what was scanned, then decode escapes.
        var decoded = [UInt8](UnsafeBufferPointer(rebasing: input[start..<position]))
        decoded.reserveCapacity(decoded.count + 32)
        while position < input.count {
            let byte = input[position]
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: decoded, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try decodeEscape(into: &decoded)
            case 0..<0x20:
                throw error("control character in a string")
            case 0..<0x80:
                decoded.append(byte)
                position += 1
            default:
                let sequenceStart = position
                try skipUTF8Sequence()
                decoded.append(contentsOf: UnsafeBufferPointer(rebasing: input[sequenceStart..<position]))
            }
        }
        throw error("unterminated string")
    }

    /// Checks one multi-byte UTF-8 sequence at `position` and steps over it, following the
    /// well-formed table of Unicode section 3.9 (no overlong forms, no surrogates, nothing
    /// above U+10FFFF).
    mutating func skipUTF8Sequence() throws(JSONParseError) {
        let lead = input[position]
        let length: Int
        var secondLow: UInt8 = 0x80
        var secondHigh: UInt8 = 0xbf
        switch lead {
        case 0xc2...0xdf: length = 2
        case 0xe0: length = 3; secondLow = 0xa0
        case 0xe1...0xec, 0xee...0xef: length = 3
        case 0xed: length = 3; secondHigh = 0x9f
        case 0xf0: length = 4; secondLow = 0x90
        case 0xf1...0xf3: length = 4
        case 0xf4: length = 4; secondHigh = 0x8f
        default: throw error("invalid UTF-8")
        }
        guard input.count - position >= length else { throw error("invalid UTF-8") }
        let second = input[position + 1]
        guard second >= secondLow && second <= secondHigh else { throw error("invalid UTF-8") }
        for index in 2..<max(length, 2) where input[position + index] & 0xc0 != 0x80 {
            throw error("invalid UTF-8")
        }
        position += length
    }

    mutating func decodeEscape(into decoded: inout [UInt8]) throws(JSONParseError) {
        guard input.count - position >= 2 else { throw error("unterminated escape") }
        let escaped = input[position + 1]
        position += 2
        switch escaped {
        case UInt8(ascii: "\""): decoded.append(0x22)
        case UInt8(ascii: "\\"): decoded.append(0x5c)
        case UInt8(ascii: "/"): decoded.append(0x2f)
        case UInt8(ascii: "b"): decoded.append(0x08)
        case UInt8(ascii: "f"): decoded.append(0x0c)
        case UInt8(ascii: "n"): decoded.append(0x0a)
        case UInt8(ascii: "r"): decoded.append(0x0d)
        case UInt8(ascii: "t"): decoded.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try readHex4()
            if scalar >= 0xd800 && scalar <= 0xdbff {
                // A high surrogate must be followed by an escaped low surrogate.
                guard input.count - position >= 6,
                      input[position] == UInt8(ascii: "\\"), input[position + 1] == UInt8(ascii: "u")
                else { throw error("unpaired surrogate escape") }
                position += 2
                let low = try readHex4()
                guard low >= 0xdc00 && low <= 0xdfff else { throw error("unpaired surrogate escape") }
                scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
            } else if scalar >= 0xdc00 && scalar <= 0xdfff {
                throw error("unpaired surrogate escape")
            }
            appendUTF8(scalar, to: &decoded)
        default:
            throw error("invalid escape")
        }
    }

    mutating func readHex4() throws(JSONParseError) -> UInt32 {
        guard input.count - position >= 4 else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = input[position]
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | UInt32(nibble)
            position += 1
        }
        return value
    }

    func appendUTF8(_ scalar: UInt32, to output: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            output.append(UInt8(scalar))
        case 0x80..<0x800:
            output.append(UInt8(0xc0 | (scalar >> 6)))
            output.append(UInt8(0x80 | (scalar & 0x3f)))
        case 0x800..<0x10000:
            output.append(UInt8(0xe0 | (scalar >> 12)))
            output.append(UInt8(0x80 | ((scalar >> 6) & 0x3f)))
            output.append(UInt8(0x80 | (scalar & 0x3f)))
        default:
            output.append(UInt8(0xf0 | (scalar >> 18)))
            output.append(UInt8(0x80 | ((scalar >> 12) & 0x3f)))
            output.append(UInt8(0x80 | ((scalar >> 6) & 0x3f)))
            output.append(UInt8(0x80 | (scalar & 0x3f)))
        }
    }
}
