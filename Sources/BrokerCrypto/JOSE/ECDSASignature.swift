/// Conversion between OpenSSL's DER-encoded ECDSA signatures and JOSE's fixed-width R||S form
/// (RFC 7518 section 3.4).
///
/// Done by hand rather than through `ECDSA_SIG` and two `BIGNUM`s: it runs on every ES256
/// signature and verification, and the DER here is tiny and fully determined.
///
/// Also the one place that decides the spelling of S: (r, s) and (r, n − s) are both valid
/// ECDSA signatures of one message, so a verifier that accepts both lets anyone turn a token
/// into a second valid token with the same `jti`. The broker signs with s ≤ n/2 ("low S", as
/// Bitcoin's BIP 62 and libsecp256k1 do) and its verifiers refuse the other half.
enum ECDSASignature {
    /// The byte length of R and of S for P-256.
    static let scalarSize = 32
    /// The largest DER encoding of a P-256 signature: two 33-byte INTEGERs with headers.
    static let maxDERSize = 72

    /// The order n of the P-256 group, as four big-endian 64-bit limbs.
    private static let order: (UInt64, UInt64, UInt64, UInt64) =
        (0xffff_ffff_0000_0000, 0xffff_ffff_ffff_ffff, 0xbce6_faad_a717_9e84, 0xf3b9_cac2_fc63_2551)
    /// ⌊n/2⌋: the largest S in the one accepted spelling.
    private static let halfOrder: (UInt64, UInt64, UInt64, UInt64) =
        (0x7fff_ffff_8000_0000, 0x7fff_ffff_ffff_ffff, 0xde73_7d56_d38b_cf42, 0x79dc_e561_7e31_92a8)

    /// Whether the S half of a 64-byte R||S is at most n/2. Four limb comparisons on the
    /// stack: this runs on every ES256 verification.
    static func hasLowS(_ raw: UnsafeRawBufferPointer) -> Bool {
        guard raw.count == 2 * scalarSize else { return false }
        let s = limbs(raw, at: scalarSize)
        if s.0 != halfOrder.0 { return s.0 < halfOrder.0 }
        if s.1 != halfOrder.1 { return s.1 < halfOrder.1 }
        if s.2 != halfOrder.2 { return s.2 < halfOrder.2 }
        return s.3 <= halfOrder.3
    }

    /// Replaces S by n − S in a 64-byte R||S whose S is above n/2 (and below n, as any S
    /// OpenSSL produces is); leaves a low S alone.
    static func normalizeToLowS(_ raw: UnsafeMutableRawBufferPointer) {
        guard raw.count == 2 * scalarSize, !hasLowS(UnsafeRawBufferPointer(raw)) else { return }
        let s = limbs(UnsafeRawBufferPointer(raw), at: scalarSize)
        var borrow = false
        func subtract(_ a: UInt64, _ b: UInt64) -> UInt64 {
            let (difference, overflow) = a.subtractingReportingOverflow(b)
            let (result, overflowBorrow) = difference.subtractingReportingOverflow(borrow ? 1 : 0)
            borrow = overflow || overflowBorrow
            return result
        }
        let d3 = subtract(order.3, s.3)
        let d2 = subtract(order.2, s.2)
        let d1 = subtract(order.1, s.1)
        let d0 = subtract(order.0, s.0)
        raw.storeBytes(of: d0.bigEndian, toByteOffset: scalarSize, as: UInt64.self)
        raw.storeBytes(of: d1.bigEndian, toByteOffset: scalarSize + 8, as: UInt64.self)
        raw.storeBytes(of: d2.bigEndian, toByteOffset: scalarSize + 16, as: UInt64.self)
        raw.storeBytes(of: d3.bigEndian, toByteOffset: scalarSize + 24, as: UInt64.self)
    }

    private static func limbs(_ raw: UnsafeRawBufferPointer, at offset: Int) -> (UInt64, UInt64, UInt64, UInt64) {
        (
            UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)),
            UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)),
            UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self)),
            UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self))
        )
    }

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
