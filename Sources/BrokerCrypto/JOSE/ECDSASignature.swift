/// Conversion between OpenSSL's DER-encoded ECDSA signatures and JOSE's fixed-width R||S form
/// (RFC 7518 section 3.4).
///
/// Done by hand rather than through `ECDSA_SIG` and two `BIGNUM`s: it runs on every ES256
/// signature and verification, and the DER here is tiny and fully determined.
enum ECDSASignature {
    /// The byte length of R and of S for P-256.
    static let scalarSize = 32
    /// The largest DER encoding of a P-256 signature: two 33-byte INTEGERs with headers.
    static let maxDERSize = 72

    /// Converts `der` to R||S, written to `output` (64 bytes). False if `der` is not a
    /// well-formed P-256 signature.
    static func rawFromDER(_ der: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Bool {
        guard der.count >= 8, der[0] == 0x30, output.count >= 2 * scalarSize else { return false }
        var position = 1
        var sequenceLength = Int(der[position])
        position += 1
        if sequenceLength == 0x81 {
            guard der.count > position else { return false }
            sequenceLength = Int(der[position])
            position += 1
        } else if sequenceLength > 0x7f {
            return false
        }
        guard position + sequenceLength == der.count else { return false }
        for half in 0..<2 {
            guard position + 2 <= der.count, der[position] == 0x02 else { return false }
            var length = Int(der[position + 1])
            position += 2
            guard length > 0, length <= scalarSize + 1, position + length <= der.count else { return false }
            // DER INTEGERs are signed, so a leading 0x00 may precede a high bit.
            var start = position
            while length > scalarSize, der[start] == 0 {
                start += 1
                length -= 1
            }
            guard length <= scalarSize else { return false }
            let destination = half * scalarSize
            let padding = scalarSize - length
            for index in 0..<padding { output[destination + index] = 0 }
            for index in 0..<length { output[destination + padding + index] = der[start + index] }
            position = start + length
        }
        return position == der.count
    }

    /// Encodes a 64-byte R||S as DER into `output` (at least `maxDERSize` bytes); returns the
    /// length written.
    static func derFromRaw(_ raw: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int {
        precondition(raw.count == 2 * scalarSize && output.count >= maxDERSize)
        var position = 2  // the SEQUENCE header is written last, once its length is known
        for half in 0..<2 {
            let base = half * scalarSize
            var start = base
            // Minimal encoding: drop leading zero bytes, keeping at least one.
            while start < base + scalarSize - 1, raw[start] == 0 { start += 1 }
            let needsPad = raw[start] & 0x80 != 0
            let length = base + scalarSize - start + (needsPad ? 1 : 0)
            output[position] = 0x02
            output[position + 1] = UInt8(length)
            position += 2
            if needsPad {
                output[position] = 0
                position += 1
            }
            for index in start..<(base + scalarSize) {
                output[position] = raw[index]
                position += 1
            }
        }
        output[0] = 0x30
        output[1] = UInt8(position - 2)
        return position
    }
}
