/// Who a valid token speaks for, as a gateway passes it on to the cluster's nodes.
///
/// ```swift
/// if case .success(let identity) = await validator.validate(bearer, cluster: "cluster1") {
///     headers[GatewayHeaders.account] = identity.account   // after removing GatewayHeaders.reservedNames(in:)
///     headers[GatewayHeaders.orgRoles] = identity.roles.joined(separator: " ")
/// }
/// ```
public struct GatewayIdentity: Sendable, Equatable {
    /// The token's `sub`: the broker account's unique username (for a GitHub login too; the
    /// GitHub login, for display, is `claims.githubLogin`).
    public let account: String
    /// The holder's roles at the validated cluster, e.g. `["owner", "member"]`: its entry in a
    /// multi-cluster token's `cluster_roles`, or a single-organization token's `org_roles`
    /// (``AccessTokenClaims/roles(atCluster:)``).
    public let roles: [String]
    /// Every verified claim, for gateways that need more than the two above.
    public let claims: AccessTokenClaims

    /// - Parameter cluster: the cluster the token was validated for; the roles are those there.
    public init(claims: AccessTokenClaims, cluster: String) {
        account = claims.subject
        roles = claims.roles(atCluster: cluster)
        self.claims = claims
    }
}
