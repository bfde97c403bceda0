#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as parsed by `inet_pton`. An IPv4-mapped IPv6 address
/// (`::ffff:192.0.2.1`) is the IPv4 address it maps: a dual-stack socket reports IPv4 clients
/// that way, and both spellings must meet the same proxy rule and the same throttle counter.
///
/// ```swift
/// let address = IPAddress("::ffff:192.0.2.1")!
/// address.description     // "192.0.2.1"
/// IPAddress("2001:db8::1:2:3:4")!.throttleGroup  // "2001:db8:0:1::/64"
/// ```
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable {
        case v4
        case v6
    }

    public let family: Family
    /// 4 (IPv4) or 16 (IPv6) bytes in network order.
    public let bytes: [UInt8]

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text; `nil` for anything else (ports,
    /// brackets, zone ids, host names, surrounding spaces).
    public init?(_ text: some StringProtocol) {
        guard let bytes = Self.parseBytes(String(text)) else { return nil }
        self.init(normalizing: bytes)
    }

    init(normalizing bytes: [UInt8]) {
        if Self.isIPv4Mapped(bytes) {
            self.init(family: .v4, bytes: Array(bytes[12...]))
        } else {
            self.init(exactly: bytes)
        }
    }

    /// The address of 4 or 16 bytes as they are, IPv4-mapped IPv6 included: for blocks wider
    /// than ::ffff:0:0/96, which hold more than IPv4 addresses.
    init(exactly bytes: [UInt8]) {
        self.init(family: bytes.count == 4 ? .v4 : .v6, bytes: bytes)
    }

    private init(family: Family, bytes: [UInt8]) {
        self.family = family
        self.bytes = bytes
    }

    /// 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        family == .v4 ? bytes[0] == 127 : bytes == Array(repeating: 0, count: 15) + [1]
    }

    /// The number of bits in an address of this family.
    public var bitWidth: Int { bytes.count * 8 }

    /// The address with every bit after the first `prefixLength` cleared.
    public func masked(to prefixLength: Int) -> IPAddress {
        var masked = bytes
        for index in masked.indices {
            let kept = min(8, max(0, prefixLength - index * 8))
            masked[index] &= kept == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - kept))
        }
        return IPAddress(family: family, bytes: masked)
    }

    /// The 16-byte IPv6 form (IPv4 as `::ffff:a.b.c.d`), for matching against IPv6 blocks.
    var ipv6Bytes: [UInt8] {
        family == .v6 ? bytes : Array(repeating: 0, count: 10) + [0xFF, 0xFF] + bytes
    }

    /// What brute-force counters count per address: an IPv4 address on its own, an IPv6 address
    /// by its /64, because one subscriber (one attacker) is routinely given a whole /64 and
    /// could otherwise take a fresh address for every guess.
    public var throttleGroup: String {
        family == .v4 ? description : "\(masked(to: 64))/64"
    }

    /// The canonical text (`inet_ntop`): lower case, zeros compressed.
    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = self.family == .v4 ? AF_INET : AF_INET6
        let written = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count))
        }
        guard written != nil else { return bytes.map(String.init).joined(separator: ".") }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The 4 or 16 bytes `inet_pton` reads from `text`, IPv4-mapped addresses left as they are.
    static func parseBytes(_ text: String) -> [UInt8]? {
        var ipv4 = [UInt8](repeating: 0, count: 4)
        if ipv4.withUnsafeMutableBytes({ inet_pton(AF_INET, text, $0.baseAddress) }) == 1 {
            return ipv4
        }
        var ipv6 = [UInt8](repeating: 0, count: 16)
        if ipv6.withUnsafeMutableBytes({ inet_pton(AF_INET6, text, $0.baseAddress) }) == 1 {
            return ipv6
        }
        return nil
    }

    static func isIPv4Mapped(_ bytes: [UInt8]) -> Bool {
        bytes.count == 16 && bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
    }
}
