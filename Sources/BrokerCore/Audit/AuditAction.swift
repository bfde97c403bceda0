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
    /// An invitation to the portal's sign-up was made (its target is the invitation's id, never the code).
    public static let inviteCreate = AuditAction(rawValue: "invite.create")
    public static let inviteRevoke = AuditAction(rawValue: "invite.revoke")
    public static let orgPolicyChange = AuditAction(rawValue: "org.policy_change")
    public static let orgCreate = AuditAction(rawValue: "org.create")
    public static let orgDelete = AuditAction(rawValue: "org.delete")
    /// An admin freed the reserved cluster name or audience of a deleted organization.
    public static let audienceRelease = AuditAction(rawValue: "audience.release")
    public static let serviceAudienceAdd = AuditAction(rawValue: "audience.service_add")
    public static let serviceAudienceRemove = AuditAction(rawValue: "audience.service_remove")

    // MARK: Clusters
    /// A generation-1 client asked, through the broker, for a number of nodes in its
    /// organization's cluster (`desired_org_num_nodes`, `desired_org_num_nodes_ttl`); the
    /// provisioner (`provisioner_url`) acts on it.
    public static let clusterScale = AuditAction(rawValue: "cluster.scale")

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
    public static var all: [AuditAction] { catalogue.map(\.action) }

    /// What `docs/audit.md` promises about each action, in its order: the outcomes its lines can
    /// have and the fields a line fills whenever the action went ahead (its `success` lines;
    /// for `refresh.reuse_detected`, which is never a success, every line). A test holds the
    /// page and this list to each other, and the HTTP tests hold the lines to this list.
    public static let catalogue: [AuditCatalogueEntry] = {
        func entry(_ action: AuditAction, _ outcomes: [AuditOutcome]? = nil, names: [AuditField]) -> AuditCatalogueEntry {
            AuditCatalogueEntry(action: action, outcomes: outcomes ?? [.success, .failure, .denied], names: names)
        }
        // The lines of a session (logins that start one, renewals, reuse, sign-outs) name its
        // account, its session and, for generation 1, its organization.
        let session: [AuditField] = [.actor, .session, .target]
        let administration: [AuditField] = [.actor, .target]
        let membership: [AuditField] = [.actor, .org, .target]
        return [
            entry(.loginPassword, names: [.actor, .org, .session, .target]),
            entry(.loginGitHubPAT, names: session),
            entry(.loginGitHubDevice, names: session),
            entry(.sessionLogin, names: session),
            entry(.tokenRefresh, names: session),
            entry(.tokenExchange, names: session),
            entry(.refreshReuseDetected, [.denied], names: [.actor, .org, .session, .target]),
            entry(.tokenRevoke, [.success, .failure], names: [.target]),
            entry(.sessionRevoke, names: [.actor, .session]),
            entry(.sessionRevokeAll, names: administration),
            entry(.introspect, [.success, .failure], names: [.actor, .target]),
            entry(.membershipRequest, names: membership),
            entry(.membershipApprove, names: membership),
            entry(.membershipDeny, names: membership),
            entry(.membershipRemove, names: membership),
            entry(.membershipRoleChange, names: membership),
            entry(.membershipAdd, names: membership),
            // An account-only invitation has no organization.
            entry(.inviteCreate, names: administration),
            entry(.inviteRevoke, names: administration),
            entry(.orgPolicyChange, names: [.actor, .org]),
            entry(.orgCreate, names: [.actor, .org]),
            entry(.orgDelete, names: [.actor, .org]),
            entry(.audienceRelease, names: administration),
            entry(.serviceAudienceAdd, names: administration),
            entry(.serviceAudienceRemove, names: administration),
            entry(.clusterScale, names: [.actor, .org]),
            entry(.userCreate, names: administration),
            entry(.userDisable, names: administration),
            entry(.userEnable, names: administration),
            entry(.userPasswordReset, names: administration),
            entry(.userDelete, names: administration),
            entry(.userRoleChange, names: administration),
            entry(.userLinkGitHub, names: administration),
            entry(.keyRotate, names: administration),
            entry(.keyRetire, names: administration),
            entry(.keyPrune, [.success], names: administration),
        ]
    }()
}

/// A field of an audit line that may be `null`, as the catalogue of actions lists it
/// (`time`, `action` and `outcome` are always set; `request_id` and `client_ip` are set for
/// every line of an HTTP request and for none of a CLI command).
public enum AuditField: String, Sendable, CaseIterable {
    case actor
    case org
    case session
    case target
}

/// One action of ``AuditAction/catalogue``.
public struct AuditCatalogueEntry: Sendable, Equatable {
    public var action: AuditAction
    /// The outcomes its lines can have.
    public var outcomes: [AuditOutcome]
    /// The fields its lines fill whenever the action went ahead.
    public var names: [AuditField]

    /// Whether `event` (a line of this action) keeps the promise.
    public func admits(_ event: AuditEvent) -> Bool {
        guard event.action == action, outcomes.contains(event.outcome) else { return false }
        guard event.outcome == .success || !outcomes.contains(.success) else { return true }
        return names.allSatisfy { field in
            switch field {
            case .actor: event.actor != nil
            case .org: event.organization != nil
            case .session: event.session != nil
            case .target: event.target != nil
            }
        }
    }
}
