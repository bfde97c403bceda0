import Foundation

/// The reverse proxies whose `X-Forwarded-For` the broker believes (`trusted_proxies`), and the
/// rule that derives a request's client IP from the socket's peer and that header.
///
/// Only a trusted peer may name the client: anyone else could put any address in the header
/// and so escape the per-address throttle, or frame someone else's address.
///
/// ```swift
/// let proxies = try TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
/// proxies.clientIP(peer: "10.0.0.5", forwardedFor: ["203.0.113.9, 10.0.0.7"])  // "203.0.113.9"
/// proxies.clientIP(peer: "198.51.100.1", forwardedFor: ["203.0.113.9"])        // "198.51.100.1"
/// ```
public struct TrustedProxies: Sendable {
    public let networks: [IPNetwork]

    /// - Throws: ``ConfigurationError`` naming `trusted_proxies` and the entry that is not an IP
    ///   address or CIDR block.
    public init(_ entries: [String]) throws {
        networks = try entries.map(Self.network)
    }

    private static func network(_ entry: String) throws -> IPNetwork {
        let shown = entry.prefix(80)
        do {
            return try IPNetwork(parsing: entry)
        } catch {
            switch error {
            case .notAnAddress:
                throw ConfigurationError(
                    "trusted_proxies: \"\(shown)\" is not an IP address or CIDR block (e.g. 10.0.0.0/8, 2001:db8::/32)")
            case .invalidPrefixLength:
                throw ConfigurationError(
                    "trusted_proxies: \"\(shown)\" has an invalid prefix length (0...32 for IPv4, 0...128 for IPv6)")
            case .hostBitsSet(let network):
                throw ConfigurationError(
                    "trusted_proxies: \"\(shown)\" has address bits set after the prefix; did you mean \(network)?")
            }
        }
    }

    public func isTrusted(_ address: IPAddress) -> Bool {
        networks.contains { $0.contains(address) }
    }

    /// The client IP of a request, in canonical text.
    ///
    /// - Parameters:
    ///   - peer: the socket's peer address; `nil` when the transport has none.
    ///   - forwardedFor: every `X-Forwarded-For` header value, in order; each a comma-separated
    ///     list that proxies append to.
    /// - Returns: the peer unless it is a trusted proxy. Behind trusted proxies, the rightmost
    ///   address in `X-Forwarded-For` that is not itself a trusted proxy: the entries to its left
    ///   were written by the client and prove nothing. A malformed entry on that walk stops it at
    ///   the peer (whatever wrote it cannot be trusted to have written the rest). When every entry
    ///   is a trusted proxy, the leftmost one, the farthest hop anyone trusted vouches for.
    public func clientIP(peer: String?, forwardedFor: [String]) -> String? {
        guard let peer else { return nil }
        guard let peerAddress = IPAddress(peer) else { return peer }
        guard isTrusted(peerAddress) else { return peerAddress.description }
        var farthest = peerAddress
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }
        for hop in hops.reversed() {
            guard let address = IPAddress(hop.trimmingCharacters(in: .whitespaces)) else { return peerAddress.description }
            guard isTrusted(address) else { return address.description }
            farthest = address
        }
        return farthest.description
    }
}
