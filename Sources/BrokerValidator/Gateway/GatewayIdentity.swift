/// Who a valid token speaks for, as a gateway passes it on to the cluster's nodes.
///
/// ```swift
/// if case .success(let identity) = await validator.validate(bearer, cluster: "cluster1") {
///     headers["x-sliderule-account"] = identity.account
///     headers["x-sliderule-org-roles"] = identity.roles.joined(separator: " ")
/// }
/// ```
public struct GatewayIdentity: Sendable, Equatable {
    /// The token's `sub`: the broker account's unique username (for a GitHub login too; the
    /// GitHub login, for display, is `claims.githubLogin`).
    public let account: String
    /// The token's `org_roles`, e.g. `["member", "owner"]`.
    public let roles: [String]
    /// Every verified claim, for gateways that need more than the two above.
    public let claims: AccessTokenClaims

    public init(claims: AccessTokenClaims) {
        account = claims.subject
        roles = claims.organizationRoles
        self.claims = claims
    }
}
