import BrokerValidator

/// The headers that carry a verified identity to the cluster's nodes, as SlideRule's gateways
/// have always sent them.
enum IdentityHeaders {
    /// The two headers' values, or nil if the account cannot be sent faithfully in a header (a
    /// control character in `sub`). Roles that would break the space-separated list are left out.
    ///
    /// Both values are visible characters and spaces only, so they need no further check
    /// before they go on the wire (the gateway's pipeline does not validate outbound headers).
    static func values(for identity: GatewayIdentity) -> (account: String, roles: String)? {
        guard !identity.account.isEmpty, identity.account.unicodeScalars.allSatisfy(isVisible) else { return nil }
        let isSendable = { (role: String) in !role.isEmpty && role.unicodeScalars.allSatisfy(isVisible) }
        // Every role is fine nearly always: then no filtered copy.
        let roles = identity.roles.allSatisfy(isSendable) ? identity.roles : identity.roles.filter(isSendable)
        return (identity.account, roles.joined(separator: " "))
    }

    /// Not a control character and not whitespace (which separates roles; names never contain it).
    private static func isVisible(_ scalar: Unicode.Scalar) -> Bool {
        // ASCII first, as nearly every name is: 0x21...0x7E are visible and none is whitespace.
        // The Unicode property lookup, which cost more than the rest of a cache hit, is left for
        // the others.
        if scalar.isASCII { return scalar.value > 0x20 && scalar.value != 0x7F }
        return !(0x80...0x9F).contains(scalar.value) && !scalar.properties.isWhitespace
    }
}
