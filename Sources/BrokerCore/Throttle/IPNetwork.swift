/// A block of IP addresses in CIDR notation, or a single address (a /32 or /128). A block
/// written in IPv4-mapped IPv6 (`::ffff:10.0.0.0/104`) is the IPv4 block it maps (`10.0.0.0/8`).
///
/// ```swift
/// let proxies = try IPNetwork(parsing: "10.0.0.0/8")
/// proxies.contains(IPAddress("10.1.2.3")!)   // true
/// ```
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    /// Why a text is not a network.
    public enum ParseError: Error, Sendable, Equatable {
        case notAnAddress
        case invalidPrefixLength
        /// Bits are set after the prefix (`10.0.0.1/8`): likely a typo, so it is refused rather
        /// than widened to the block; `network` is what it would have meant.
        case hostBitsSet(network: IPNetwork)
    }

    /// The first address of the block.
    public let address: IPAddress
    public let prefixLength: Int

    public init(parsing text: some StringProtocol) throws(ParseError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = IPAddress.parseBytes(String(parts[0])) else { throw .notAnAddress }
        var prefixLength = bytes.count * 8
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                let length = Int(digits), length <= bytes.count * 8
            else { throw .invalidPrefixLength }
            prefixLength = length
        }
        var address = IPAddress(normalizing: bytes)
        if address.family == .v4 && bytes.count == 16 {
            // Only a mapped block that stays inside ::ffff:0:0/96 is an IPv4 block.
            if prefixLength >= 96 {
                prefixLength -= 96
            } else {
                address = IPAddress(exactly: bytes)
            }
        }
        let network = address.masked(to: prefixLength)
        guard network == address else {
            throw .hostBitsSet(network: IPNetwork(address: network, prefixLength: prefixLength))
        }
        self.init(address: network, prefixLength: prefixLength)
    }

    private init(address: IPAddress, prefixLength: Int) {
        self.address = address
        self.prefixLength = prefixLength
    }

    public func contains(_ candidate: IPAddress) -> Bool {
        switch (address.family, candidate.family) {
        case (.v4, .v4), (.v6, .v6):
            return candidate.masked(to: prefixLength) == address
        case (.v6, .v4):
            // An IPv6 block such as ::/0 also holds the IPv4 addresses it maps.
            return IPAddress(exactly: candidate.ipv6Bytes).masked(to: prefixLength) == address
        case (.v4, .v6):
            return false
        }
    }

    public var description: String { "\(address)/\(prefixLength)" }
}
