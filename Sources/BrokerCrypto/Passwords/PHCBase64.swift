extension PasswordHasher.StoredHash {
    /// Standard-alphabet base64 (`+` and `/`) as password hashes use it: PHC strings without
    /// padding, Django's PBKDF2 with it.
    ///
    /// Kept here rather than shared with the JOSE code because that is base64url, and because
    /// decoding is strict in a way generic decoders are not: non-zero trailing bits or stray
    /// padding make a different string decode to the same bytes, which a stored hash never needs.
    enum PHCBase64 {
        enum Padding {
            /// PHC strings: `=` is not part of the format.
            case forbidden
            /// Django writes padding; accept its absence too, since the bytes are unambiguous.
            case optional
        }

        private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

        private static let decodeTable: [UInt8] = {
            var table = [UInt8](repeating: 0xFF, count: 256)
            for (index, symbol) in alphabet.enumerated() { table[Int(symbol)] = UInt8(index) }
            return table
        }()

        static func encodeUnpadded(_ bytes: [UInt8]) -> String {
            var output = [UInt8]()
            output.reserveCapacity((bytes.count * 4 + 2) / 3)
            var index = 0
            while index + 3 <= bytes.count {
                let group = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
                output.append(alphabet[Int(group >> 18 & 0x3F)])
                output.append(alphabet[Int(group >> 12 & 0x3F)])
                output.append(alphabet[Int(group >> 6 & 0x3F)])
                output.append(alphabet[Int(group & 0x3F)])
                index += 3
            }
            switch bytes.count - index {
            case 1:
                let group = UInt32(bytes[index]) << 16
                output.append(alphabet[Int(group >> 18 & 0x3F)])
                output.append(alphabet[Int(group >> 12 & 0x3F)])
            case 2:
                let group = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
                output.append(alphabet[Int(group >> 18 & 0x3F)])
                output.append(alphabet[Int(group >> 12 & 0x3F)])
                output.append(alphabet[Int(group >> 6 & 0x3F)])
            default:
                break
            }
            return String(decoding: output, as: UTF8.self)
        }

        static func decode(_ text: ArraySlice<UInt8>, padding: Padding) -> [UInt8]? {
            var symbols = text
            if padding == .optional, symbols.last == UInt8(ascii: "=") {
                // Padded input must be whole quads, with one or two "=" at the very end.
                guard symbols.count % 4 == 0 else { return nil }
                symbols = symbols.dropLast()
                if symbols.last == UInt8(ascii: "=") { symbols = symbols.dropLast() }
                guard symbols.count % 4 != 0 else { return nil }
            }
            // One leftover symbol carries 6 bits: not a whole byte, so no encoder writes it.
            guard symbols.count % 4 != 1 else { return nil }

            var output = [UInt8]()
            output.reserveCapacity(symbols.count * 3 / 4)
            var accumulator: UInt32 = 0
            var bitCount = 0
            for symbol in symbols {
                let value = decodeTable[Int(symbol)]
                guard value != 0xFF else { return nil }
                accumulator = accumulator << 6 | UInt32(value)
                bitCount += 6
                if bitCount >= 8 {
                    bitCount -= 8
                    output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bitCount)))
                    accumulator &= (1 << UInt32(bitCount)) - 1
                }
            }
            // Canonical encodings leave the unused low bits of the last symbol at zero.
            guard accumulator == 0 else { return nil }
            return output
        }
    }
}
