import BrokerValidator
import HTTPTypes

/// The headers that carry a verified identity to the cluster's nodes, as SlideRule's gateways
/// have always sent them.
enum IdentityHeaders {
    static let account = HTTPField.Name(GatewayHeaders.account)!
    static let roles = HTTPField.Name(GatewayHeaders.orgRoles)!

    /// The two headers, or nil if the account cannot be sent faithfully in a header (a control
    /// character in `sub`). Roles that would break the space-separated list are left out.
    static func fields(for identity: GatewayIdentity) -> HTTPFields? {
        guard !identity.account.isEmpty, identity.account.unicodeScalars.allSatisfy(isVisible) else { return nil }
        let roles = identity.roles.filter { !$0.isEmpty && $0.unicodeScalars.allSatisfy(isVisible) }
        var fields = HTTPFields()
        fields[account] = identity.account
        fields[Self.roles] = roles.joined(separator: " ")
        return fields
    }

    /// Not a control character and not whitespace (which separates roles; names never contain it).
    private static func isVisible(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value > 0x20 && scalar.value != 0x7F && !(0x80...0x9F).contains(scalar.value)
            && !scalar.properties.isWhitespace
    }
}
