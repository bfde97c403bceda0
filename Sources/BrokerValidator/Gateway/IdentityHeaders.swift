/// The values of the headers that carry a verified identity to a cluster's nodes
/// (``GatewayHeaders/account``, ``GatewayHeaders/orgRoles``), as SlideRule's gateways have always
/// sent them. Here, beside the names, because two senders must agree on them: `broker gateway`,
/// answering its proxy, and the broker itself, forwarding the generation-1 client's scaling
/// calls to the provisioner.
public enum IdentityHeaders {
    /// The two headers' values, or nil if the account cannot be sent faithfully in a header (a
    /// control character in `sub`). Roles that would break the space-separated list are left out.
    ///
    /// Both values are visible characters and spaces only, so they need no further check
    /// before they go on the wire (the gateway's pipeline does not validate outbound headers).
    public static func values(for identity: GatewayIdentity) -> (account: String, roles: String)? {
        values(account: identity.account, roles: identity.roles)
    }

    /// ``values(for:)`` of an account and its roles at one cluster.
    public static func values(account: String, roles: [String]) -> (account: String, roles: String)? {
        guard !account.isEmpty, account.unicodeScalars.allSatisfy(isVisible) else { return nil }
        let isSendable = { (role: String) in !role.isEmpty && role.unicodeScalars.allSatisfy(isVisible) }
        // Every role is fine nearly always: then no filtered copy.
        let sendable = roles.allSatisfy(isSendable) ? roles : roles.filter(isSendable)
        return (account, sendable.joined(separator: " "))
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
