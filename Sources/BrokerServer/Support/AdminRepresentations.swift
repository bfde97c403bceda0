import BrokerCore
import BrokerCrypto
import Foundation

/// The JSON shapes of the admin and membership API (documented in `openapi.yaml`). Dates are
/// whole seconds since 1970 (like `exp`/`iat`), absent values are `null`.
extension JSONWriter {
    mutating func date(_ date: Date?) {
        if let date { int(Int64(date.timeIntervalSince1970.rounded(.down))) } else { null() }
    }

    mutating func optionalString(_ value: String?) {
        if let value { string(value) } else { null() }
    }

    mutating func user(_ user: User) {
        beginObject()
        key("id"); int(user.id)
        key("username"); string(user.username)
        key("active"); bool(user.isActive)
        key("global_role"); optionalString(user.globalRole?.rawValue)
        key("github_login"); optionalString(user.githubLogin)
        key("github_id")
        if let githubID = user.githubID { int(githubID) } else { null() }
        key("has_password"); bool(user.passwordHash != nil)
        key("created_at"); date(user.createdAt)
        endObject()
    }

    mutating func organization(_ organization: Organization) {
        beginObject()
        key("name"); string(organization.name)
        key("cluster_name"); string(organization.clusterName)
        key("created_at"); date(organization.createdAt)
        key("policy"); tokenPolicy(organization)
        endObject()
    }

    /// `holder`: `organization` (with `organization` and `use`), `reserved` (with the deleted
    /// `organization`) or `service`.
    mutating func audienceName(_ held: AudienceName, organization: String?) {
        beginObject()
        key("name"); string(held.name)
        switch held.holder {
        case .organization(_, let use):
            key("holder"); string("organization")
            key("organization"); optionalString(organization)
            key("use"); string(use.rawValue)
        case .reserved(let former):
            key("holder"); string("reserved")
            key("organization"); string(former)
            key("use"); null()
        case .service:
            key("holder"); string("service")
            key("organization"); null()
            key("use"); null()
        }
        endObject()
    }

    /// The policy as set (`null` = the broker's default) and as applied.
    mutating func tokenPolicy(_ organization: Organization) {
        beginObject()
        key("access_lifetime")
        if let lifetime = organization.tokenPolicy.accessLifetime { int(Int64(lifetime)) } else { null() }
        key("audiences")
        if let audiences = organization.tokenPolicy.audiences { strings(audiences) } else { null() }
        field("effective_audiences", strings: organization.tokenAudience)
        endObject()
    }

    mutating func membership(_ membership: Membership, username: String, organization: String) {
        beginObject()
        key("org"); string(organization)
        key("username"); string(username)
        key("role"); string(membership.role.rawValue)
        key("active"); bool(membership.isActive)
        key("created_at"); date(membership.createdAt)
        endObject()
    }

    mutating func membershipRequest(_ request: MembershipRequest, organization: String) {
        beginObject()
        key("org"); string(organization)
        key("username"); string(request.username)
        key("status"); string("pending")
        key("requested_at"); date(request.requestedAt)
        endObject()
    }

    mutating func session(_ family: RefreshFamily, organization: String?) {
        beginObject()
        key("id"); string(family.id)
        key("kind"); string(family.scope.kind)
        key("org"); optionalString(organization)
        key("authenticated_at"); date(family.authenticatedAt)
        key("expires_at"); date(family.expiresAt)
        field("amr", strings: family.authenticationMethods)
        key("revoked_at"); date(family.revokedAt)
        key("revocation_reason"); optionalString(family.revocationReason)
        endObject()
    }

    mutating func signingKey(_ metadata: KeyMetadata) {
        beginObject()
        key("kid"); string(metadata.kid)
        key("alg"); string(metadata.algorithm.rawValue)
        key("state"); string(metadata.state.rawValue)
        key("created_at"); date(metadata.createdAt)
        key("activated_at"); date(metadata.activatedAt)
        key("retired_at"); date(metadata.retiredAt)
        key("retires_at"); date(metadata.retiresAt)
        endObject()
    }
}
