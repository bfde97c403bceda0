/// Strict base64url without padding (RFC 4648 section 5), as JOSE requires (RFC 7515 section 2).
///
/// Decoding accepts exactly one spelling per byte string: no `=` padding, no `+` or `/`, no
/// whitespace, and the unused low bits of the last character must be zero. Accepting several
/// spellings of one signature would let a token be altered without invalidating it, which
/// breaks caches and replay lists keyed on the token text.
///
/// ```swift
/// let text = Base64URL.encode([0xfb, 0xff])      // "-_8"
/// let bytes = Base64URL.decode("-_8")            // [0xfb, 0xff]
/// Base64URL.decode("-_9")                        // nil: non-zero trailing bits
/// ```
public enum Base64URL {
    /// The number of characters that encode `count` bytes.
    @inlinable
    public static func encodedLength(_ count: Int) -> Int {
        let remainder = count % 3
        return (count / 3) * 4 + (remainder == 0 ? 0 : remainder + 1)
    }

    /// Encodes `bytes` as unpadded base64url text.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        if let text = bytes.withContiguousStorageIfAvailable({ encodeToString(UnsafeRawBufferPointer($0)) }) {
            return text
        }
        return Array(bytes).withUnsafeBytes { encodeToString($0) }
    }

    /// Encodes `bytes` as unpadded base64url text. (The common case, without generic dispatch.)
    public static func encode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { encodeToString($0) }
    }

    /// Appends the encoding of `bytes` to `output`, for building tokens without intermediate strings.
    public static func encode(into output: inout [UInt8], _ bytes: UnsafeRawBufferPointer) {
        let start = output.count
        let length = encodedLength(bytes.count)
        output.append(contentsOf: repeatElement(0, count: length))
        output.withUnsafeMutableBufferPointer { buffer in
            _ = encode(bytes, to: buffer.baseAddress! + start)
        }
    }

    /// Decodes strict unpadded base64url text; nil if it is not exactly that.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        if let result = text.utf8.withContiguousStorageIfAvailable({ decode(buffer: $0) }) {
            return result
        }
        return Array(text.utf8).withUnsafeBufferPointer { decode(buffer: $0) }
    }

    /// Decodes strict unpadded base64url from ASCII bytes; nil if they are not exactly that.
    public static func decode(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        bytes.withUnsafeBufferPointer { decode(buffer: $0) }
    }

    // MARK: - Core loops on raw buffers

    private static func encodeToString(_ bytes: UnsafeRawBufferPointer) -> String {
        let length = encodedLength(bytes.count)
        return String(unsafeUninitializedCapacity: length) { buffer in
            encode(bytes, to: buffer.baseAddress!)
        }
    }

    /// Writes the encoding of `source` at `destination`, which must have room for
    /// `encodedLength(source.count)` bytes; returns the number written.
    @discardableResult
    static func encode(_ source: UnsafeRawBufferPointer, to destination: UnsafeMutablePointer<UInt8>) -> Int {
        let count = source.count
        guard count > 0, let input = source.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return 0 }
        return encodeAlphabet.withUnsafeBufferPointer { table -> Int in
            var read = 0
            var written = 0
            while read + 3 <= count {
                let word = UInt32(input[read]) << 16 | UInt32(input[read + 1]) << 8 | UInt32(input[read + 2])
                destination[written] = table[Int(word >> 18)]
                destination[written + 1] = table[Int((word >> 12) & 0x3f)]
                destination[written + 2] = table[Int((word >> 6) & 0x3f)]
                destination[written + 3] = table[Int(word & 0x3f)]
                read += 3
                written += 4
            }
            switch count - read {
            case 1:
                let word = UInt32(input[read]) << 16
                destination[written] = table[Int(word >> 18)]
                destination[written + 1] = table[Int((word >> 12) & 0x3f)]
                written += 2
            case 2:
                let word = UInt32(input[read]) << 16 | UInt32(input[read + 1]) << 8
                destination[written] = table[Int(word >> 18)]
                destination[written + 1] = table[Int((word >> 12) & 0x3f)]
                destination[written + 2] = table[Int((word >> 6) & 0x3f)]
                written += 3
            default:
                break
            }
            return written
        }
    }

    static func decode(buffer source: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let count = source.count
        let remainder = count % 4
        // One character carries only 6 bits, not a whole byte.
        guard remainder != 1 else { return nil }
        let length = (count / 4) * 3 + (remainder == 0 ? 0 : remainder - 1)
        var valid = true
        let output = [UInt8](unsafeUninitializedCapacity: length) { out, initialised in
            initialised = length
            valid = decodeAlphabet.withUnsafeBufferPointer { table in
                decode(source, into: out, table: table)
            }
        }
        return valid ? output : nil
    }

    /// Decodes into `output` (of exactly the decoded length); false on any non-canonical input.
    @inline(__always)
    private static func decode(
        _ source: UnsafeBufferPointer<UInt8>,
        into output: UnsafeMutableBufferPointer<UInt8>,
        table: UnsafeBufferPointer<UInt8>
    ) -> Bool {
        let count = source.count
        var read = 0
        var written = 0
        // Invalid characters map to 0x80; OR-ing all values lets the loop test once at the end.
        var invalid: UInt8 = 0
        while read + 4 <= count {
            let a = table[Int(source[read])]
            let b = table[Int(source[read + 1])]
            let c = table[Int(source[read + 2])]
            let d = table[Int(source[read + 3])]
            invalid |= a | b | c | d
            let word = UInt32(a & 0x3f) << 18 | UInt32(b & 0x3f) << 12 | UInt32(c & 0x3f) << 6 | UInt32(d & 0x3f)
            output[written] = UInt8(truncatingIfNeeded: word >> 16)
            output[written + 1] = UInt8(truncatingIfNeeded: word >> 8)
            output[written + 2] = UInt8(truncatingIfNeeded: word)
            read += 4
            written += 3
        }
        switch count - read {
        case 2:
            let a = table[Int(source[read])]
            let b = table[Int(source[read + 1])]
            invalid |= a | b
            // The last character's low 4 bits fall outside the byte and must be zero.
            if b & 0x0f != 0 { return false }
            output[written] = (a & 0x3f) << 2 | (b & 0x3f) >> 4
        case 3:
            let a = table[Int(source[read])]
            let b = table[Int(source[read + 1])]
            let c = table[Int(source[read + 2])]
            invalid |= a | b | c
            // The last character's low 2 bits fall outside the bytes and must be zero.
            if c & 0x03 != 0 { return false }
            output[written] = (a & 0x3f) << 2 | (b & 0x3f) >> 4
            output[written + 1] = (b & 0x0f) << 4 | (c & 0x3f) >> 2
        default:
            break
        }
        return invalid & 0x80 == 0
    }

    private static let encodeAlphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    private static let decodeAlphabet: [UInt8] = {
        var table = [UInt8](repeating: 0x80, count: 256)
        for (value, character) in encodeAlphabet.enumerated() {
            table[Int(character)] = UInt8(value)
        }
        return table
    }()
}
