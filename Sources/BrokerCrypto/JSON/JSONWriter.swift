/// A streaming JSON writer that appends UTF-8 straight into a byte buffer.
///
/// It exists because Foundation's `JSONEncoder` costs tens of microseconds per token, more
/// than the ES256 signature it feeds. Commas are inserted automatically; the caller is
/// responsible for balancing `begin`/`end` calls and for writing a value after each `key`.
///
/// ```swift
/// var json = JSONWriter()
/// json.beginObject()
/// json.key("sub"); json.string("alice")
/// json.field("aud", strings: ["cluster-a"])
/// json.field("exp", 1_767_225_600)
/// json.endObject()
/// let payload = json.bytes   // {"sub":"alice","aud":["cluster-a"],"exp":1767225600}
/// ```
public struct JSONWriter: Sendable {
    // The hot methods are @inlinable so that a caller's claim builder is specialised and
    // inlined across the module boundary: a token's claims are ~50 small writes, and plain
    // cross-module calls plus `Array.append` bookkeeping cost more than the bytes written.
    // Writes go through `write(maxCount:_:)`, which reserves room once and fills it through
    // a pointer; `buffer` is kept larger than the document and `length` says how much is used.

    /// Storage; bytes at and after `length` are scratch.
    @usableFromInline var buffer: [UInt8]
    /// The number of bytes written.
    @usableFromInline var length = 0
    /// Whether the next value or key must be preceded by a comma: true right after a value,
    /// false right after an opening bracket or a key.
    @usableFromInline var needsComma = false

    /// - Parameter capacity: bytes to reserve up front, so that a typical document is written
    ///   without reallocating.
    public init(capacity: Int = 512) {
        buffer = [UInt8](repeating: 0, count: max(capacity, 16))
    }

    /// The document written so far, UTF-8 encoded.
    public var bytes: [UInt8] {
        Array(buffer[0..<length])
    }

    /// Calls `body` with the document written so far, without copying it.
    public func withBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
    }

    @inlinable
    public mutating func beginObject() {
        writeStructural(UInt8(ascii: "{"))
        needsComma = false
    }

    @inlinable
    public mutating func endObject() {
        writeByte(UInt8(ascii: "}"))
        needsComma = true
    }

    @inlinable
    public mutating func beginArray() {
        writeStructural(UInt8(ascii: "["))
        needsComma = false
    }

    @inlinable
    public mutating func endArray() {
        writeByte(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Writes an object member name; the next call must write its value.
    @inlinable
    public mutating func key(_ name: String) {
        writeQuoted(name, suffix: UInt8(ascii: ":"))
        needsComma = false
    }

    @inlinable
    public mutating func string(_ value: String) {
        writeQuoted(value, suffix: nil)
        needsComma = true
    }

    @inlinable
    public mutating func int(_ value: Int64) {
        let comma = needsComma
        write(maxCount: 21) { output in
            var index = 0
            if comma {
                output[0] = UInt8(ascii: ",")
                index = 1
            }
            return index + Self.writeDecimal(value, to: output + index)
        }
        needsComma = true
    }

    /// Writes a floating-point number in the shortest form that reads back to the same value.
    /// JSON has no NaN or infinity, so those are written as `null`.
    public mutating func number(_ value: Double) {
        guard value.isFinite else {
            null()
            return
        }
        if value == value.rounded(), abs(value) < 1e15 {
            // Integral values print as integers ("3", not "3.0"), as every JSON writer does.
            int(Int64(value))
        } else {
            writeRaw(value.description)
        }
    }

    @inlinable
    public mutating func bool(_ value: Bool) {
        writeRaw(value ? "true" : "false")
    }

    @inlinable
    public mutating func null() {
        writeRaw("null")
    }

    /// Writes a whole value tree. Object members are written in sorted key order so that the
    /// output is deterministic.
    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): self.bool(flag)
        case .integer(let integer): int(integer)
        case .number(let double): number(double)
        case .string(let text): string(text)
        case .array(let elements):
            beginArray()
            for element in elements { self.value(element) }
            endArray()
        case .object(let members):
            beginObject()
            for name in members.keys.sorted() {
                key(name)
                self.value(members[name]!)
            }
            endObject()
        }
    }

    // MARK: Shorthands for one member

    @inlinable
    public mutating func field(_ name: String, _ value: String) {
        key(name)
        string(value)
    }

    @inlinable
    public mutating func field(_ name: String, _ value: Int64) {
        key(name)
        int(value)
    }

    @inlinable
    public mutating func field(_ name: String, _ value: Bool) {
        key(name)
        bool(value)
    }

    /// Writes an array of strings.
    @inlinable
    public mutating func strings(_ values: [String]) {
        beginArray()
        for value in values { string(value) }
        endArray()
    }

    /// Writes `name` with an array of strings as its value.
    @inlinable
    public mutating func field(_ name: String, strings values: [String]) {
        key(name)
        strings(values)
    }

    // MARK: - Encoding

    /// Reserves `maxCount` bytes, lets `body` fill a prefix of them and returns how many it wrote.
    @inlinable @inline(__always)
    mutating func write(maxCount: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) {
        if buffer.count - length < maxCount { grow(toHold: length + maxCount) }
        let start = length
        length += buffer.withUnsafeMutableBufferPointer { body($0.baseAddress! + start) }
    }

    @usableFromInline
    mutating func grow(toHold minimum: Int) {
        var size = Swift.max(buffer.count * 2, 16)
        while size < minimum { size *= 2 }
        buffer.append(contentsOf: repeatElement(0, count: size - buffer.count))
    }

    @inlinable @inline(__always)
    mutating func writeByte(_ byte: UInt8) {
        write(maxCount: 1) { output in
            output[0] = byte
            return 1
        }
    }

    /// Writes an opening bracket, preceded by a comma if a value came before.
    @inlinable @inline(__always)
    mutating func writeStructural(_ byte: UInt8) {
        let comma = needsComma
        write(maxCount: 2) { output in
            if comma {
                output[0] = UInt8(ascii: ",")
                output[1] = byte
                return 2
            }
            output[0] = byte
            return 1
        }
    }

    /// Writes a literal that needs no escaping (`true`, a number's text), as a value.
    @inlinable
    mutating func writeRaw(_ text: String) {
        let comma = needsComma
        var text = text
        text.withUTF8 { utf8 in
            write(maxCount: utf8.count + 1) { output in
                var index = 0
                if comma {
                    output[0] = UInt8(ascii: ",")
                    index = 1
                }
                if let source = utf8.baseAddress { (output + index).update(from: source, count: utf8.count) }
                return index + utf8.count
            }
        }
        needsComma = true
    }

    /// Writes `"text"` (escaped), preceded by a comma if needed and followed by `suffix`.
    @inlinable
    mutating func writeQuoted(_ text: String, suffix: UInt8?) {
        let comma = needsComma
        var text = text
        text.withUTF8 { utf8 in
            // A native Swift string is valid UTF-8, so only the characters JSON forbids inside
            // a string need attention: the quote, the backslash and C0 controls (RFC 8259 §7).
            var clean = true
            for byte in utf8 where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                clean = false
                break
            }
            // Escaping at most sextuples a byte (\u00XX).
            let maxCount = (clean ? utf8.count : 6 * utf8.count) + 4
            write(maxCount: maxCount) { output in
                var index = 0
                if comma {
                    output[0] = UInt8(ascii: ",")
                    index = 1
                }
                output[index] = UInt8(ascii: "\"")
                index += 1
                if clean {
                    if let source = utf8.baseAddress { (output + index).update(from: source, count: utf8.count) }
                    index += utf8.count
                } else {
                    index += Self.writeEscaped(utf8, to: output + index)
                }
                output[index] = UInt8(ascii: "\"")
                index += 1
                if let suffix {
                    output[index] = suffix
                    index += 1
                }
                return index
            }
        }
    }

    @usableFromInline
    static func writeEscaped(_ utf8: UnsafeBufferPointer<UInt8>, to output: UnsafeMutablePointer<UInt8>) -> Int {
        var index = 0
        for byte in utf8 {
            let short: UInt8
            switch byte {
            case UInt8(ascii: "\""): short = UInt8(ascii: "\"")
            case UInt8(ascii: "\\"): short = UInt8(ascii: "\\")
            case 0x08: short = UInt8(ascii: "b")
            case 0x0c: short = UInt8(ascii: "f")
            case 0x0a: short = UInt8(ascii: "n")
            case 0x0d: short = UInt8(ascii: "r")
            case 0x09: short = UInt8(ascii: "t")
            case 0..<0x20:
                // Other C0 controls have no short escape: \u00XX.
                output[index] = UInt8(ascii: "\\")
                output[index + 1] = UInt8(ascii: "u")
                output[index + 2] = UInt8(ascii: "0")
                output[index + 3] = UInt8(ascii: "0")
                output[index + 4] = hexDigit(byte >> 4)
                output[index + 5] = hexDigit(byte & 0x0f)
                index += 6
                continue
            default:
                output[index] = byte
                index += 1
                continue
            }
            output[index] = UInt8(ascii: "\\")
            output[index + 1] = short
            index += 2
        }
        return index
    }

    @inline(__always)
    static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? nibble &+ 48 : nibble &+ 87
    }

    /// Writes `value` in decimal at `output` (room for 20 bytes); returns the length.
    @inlinable
    static func writeDecimal(_ value: Int64, to output: UnsafeMutablePointer<UInt8>) -> Int {
        // Int64.min has no positive counterpart, so digits come from the magnitude.
        var magnitude = value.magnitude
        var digits = 0
        var probe = magnitude
        repeat {
            digits += 1
            probe /= 10
        } while probe != 0
        var index = 0
        if value < 0 {
            output[0] = UInt8(ascii: "-")
            index = 1
        }
        var position = index + digits
        let end = position
        repeat {
            position -= 1
            output[position] = UInt8(truncatingIfNeeded: magnitude % 10) &+ 48
            magnitude /= 10
        } while magnitude != 0
        return end
    }
}
