/// What an audit line records: a dotted name, `<subject>.<verb>`, stable across releases because
/// operators grep for it and `broker audit --action` matches it exactly.
///
/// Every action the broker writes is a constant here, so a typo is a compile error rather than a
/// line nobody finds; `docs/audit.md` says when each is written.
///
/// ```swift
/// try await services.audit.record(.tokenRefresh, .success, actor: "alice", organization: "org1")
/// AuditAction(rawValue: "login.password") == .loginPassword   // true
/// ```
public struct AuditAction: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    public var description: String { rawValue }

    // MARK: Authentication
    public static let loginPassword = AuditAction(rawValue: "login.password")
    public static let loginGitHubPAT = AuditAction(rawValue: "login.github_pat")
    public static let loginGitHubDevice = AuditAction(rawValue: "login.github_device")
    public static let sessionLogin = AuditAction(rawValue: "session.login")

    // MARK: Tokens and sessions
    public static let tokenRefresh = AuditAction(rawValue: "token.refresh")
    public static let tokenExchange = AuditAction(rawValue: "token.exchange")
    public static let refreshReuseDetected = AuditAction(rawValue: "refresh.reuse_detected")
    public static let tokenRevoke = AuditAction(rawValue: "token.revoke")
    public static let sessionRevoke = AuditAction(rawValue: "session.revoke")
    public static let sessionRevokeAll = AuditAction(rawValue: "session.revoke_all")
    public static let introspect = AuditAction(rawValue: "introspect")

    // MARK: Memberships and organizations
    public static let membershipRequest = AuditAction(rawValue: "membership.request")
    public static let membershipApprove = AuditAction(rawValue: "membership.approve")
    public static let membershipDeny = AuditAction(rawValue: "membership.deny")
    public static let membershipRemove = AuditAction(rawValue: "membership.remove")
    public static let membershipRoleChange = AuditAction(rawValue: "membership.role_change")
    /// An operator added a member directly (CLI `members add`), without a request.
    public static let membershipAdd = AuditAction(rawValue: "membership.add")
    public static let orgPolicyChange = AuditAction(rawValue: "org.policy_change")
    public static let orgCreate = AuditAction(rawValue: "org.create")
    public static let orgDelete = AuditAction(rawValue: "org.delete")
    /// An admin freed the reserved cluster name or audience of a deleted organization.
    public static let audienceRelease = AuditAction(rawValue: "audience.release")
    public static let serviceAudienceAdd = AuditAction(rawValue: "audience.service_add")
    public static let serviceAudienceRemove = AuditAction(rawValue: "audience.service_remove")

    // MARK: Accounts
    public static let userCreate = AuditAction(rawValue: "user.create")
    public static let userDisable = AuditAction(rawValue: "user.disable")
    public static let userEnable = AuditAction(rawValue: "user.enable")
    public static let userPasswordReset = AuditAction(rawValue: "user.password_reset")
    public static let userDelete = AuditAction(rawValue: "user.delete")
    public static let userRoleChange = AuditAction(rawValue: "user.role_change")
    public static let userLinkGitHub = AuditAction(rawValue: "user.link_github")

    // MARK: Signing keys
    public static let keyRotate = AuditAction(rawValue: "key.rotate")
    public static let keyRetire = AuditAction(rawValue: "key.retire")
    public static let keyPrune = AuditAction(rawValue: "key.prune")

    /// Every action above, in the order `docs/audit.md` lists them.
    public static let all: [AuditAction] = [
        .loginPassword, .loginGitHubPAT, .loginGitHubDevice, .sessionLogin,
        .tokenRefresh, .tokenExchange, .refreshReuseDetected, .tokenRevoke,
        .sessionRevoke, .sessionRevokeAll, .introspect,
        .membershipRequest, .membershipApprove, .membershipDeny, .membershipRemove, .membershipRoleChange,
        .membershipAdd, .orgPolicyChange, .orgCreate, .orgDelete,
        .audienceRelease, .serviceAudienceAdd, .serviceAudienceRemove,
        .userCreate, .userDisable, .userEnable, .userPasswordReset, .userDelete,
        .userRoleChange, .userLinkGitHub, .keyRotate, .keyRetire, .keyPrune,
    ]
}
