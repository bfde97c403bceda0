import BrokerCore
import BrokerCrypto
import Foundation

/// Which admin page is shown (the `admin_nav` partial marks it).
struct AdminTabs: Sendable {
    var onUsers = false
    var onOrgs = false
    var onKeys = false
    var onAudit = false
}

struct AdminUsersView: Sendable {
    struct Row: Sendable {
        var username: String
        var usernamePath: String
        var globalRole: String
        var status: String
        var githubLogin: String
        var createdAt: String
        var createdAtISO: String
    }

    var chrome: PageChrome
    var onUsers = true
    var users: [Row]
    var nextPage: String?

    init(chrome: PageChrome, users: [User], next: Int64?) {
        self.chrome = chrome
        self.users = users.map { user in
            Row(
                username: user.username, usernamePath: PortalPaths.segment(user.username),
                globalRole: user.globalRole?.rawValue ?? "—", status: user.isActive ? "active" : "disabled",
                githubLogin: user.githubLogin ?? "—", createdAt: PortalDates.display(user.createdAt),
                createdAtISO: PortalDates.iso(user.createdAt))
        }
        nextPage = next.map(String.init)
    }
}

struct AdminUserView: Sendable {
    struct RoleOption: Sendable {
        var value: String
        var label: String
        var selected: Bool
    }

    struct SessionRow: Sendable {
        var id: String
        var kind: String
        var startedAt: String
        var startedAtISO: String
        var from: String
    }

    var chrome: PageChrome
    var onUsers = true
    var formCSRF: String
    var username: String
    var usernamePath: String
    var status: String
    var active: Bool
    var globalRole: String
    var githubLogin: String
    var passwordState: String
    var roleOptions: [RoleOption]
    var sessions: [SessionRow]
    var hasSessions: Bool
    var actionError: String?

    init(
        chrome: PageChrome, formCSRF: String, user: User, sessions: [(family: RefreshFamily, organization: String?)], now: Date,
        actionError: String?
    ) {
        self.chrome = chrome
        self.formCSRF = formCSRF
        username = user.username
        usernamePath = PortalPaths.segment(user.username)
        active = user.isActive
        status = user.isActive ? "active" : "disabled"
        globalRole = user.globalRole?.rawValue ?? "none"
        githubLogin = user.githubLogin ?? "not linked"
        passwordState = user.passwordHash == nil ? "none (GitHub only)" : "set"
        roleOptions = [RoleOption(value: "none", label: "none", selected: user.globalRole == nil)]
            + GlobalRole.allCases.map { RoleOption(value: $0.rawValue, label: $0.rawValue, selected: user.globalRole == $0) }
        self.sessions = sessions.filter { entry in
            PresentedTokens.sessionRefusal(entry.family, now: now) == nil && PresentedTokens.accountRefusal(user, of: entry.family) == nil
        }.map { entry in
            let kind =
                switch entry.family.scope {
                case .organization: "generation 1, \(entry.organization ?? "?")"
                case .allClusters: "generation 2 (GitHub)"
                case .broker: "broker session (API or browser)"
                }
            return SessionRow(
                id: entry.family.id, kind: kind, startedAt: PortalDates.display(entry.family.authenticatedAt),
                startedAtISO: PortalDates.iso(entry.family.authenticatedAt), from: entry.family.origin?.clientIP ?? "—")
        }
        hasSessions = !self.sessions.isEmpty
        self.actionError = actionError
    }
}

struct AdminOrganizationsView: Sendable {
    struct Row: Sendable {
        var name: String
        var namePath: String
        var cluster: String
        var createdAt: String
        var createdAtISO: String
    }

    var chrome: PageChrome
    var onOrgs = true
    var formCSRF: String
    var organizations: [Row]
    var actionError: String?

    init(chrome: PageChrome, formCSRF: String, organizations: [Organization], actionError: String?) {
        self.chrome = chrome
        self.formCSRF = formCSRF
        self.organizations = organizations.sorted { $0.name < $1.name }.map { organization in
            Row(
                name: organization.name, namePath: PortalPaths.segment(organization.name), cluster: organization.clusterName,
                createdAt: PortalDates.display(organization.createdAt), createdAtISO: PortalDates.iso(organization.createdAt))
        }
        self.actionError = actionError
    }
}

struct AdminKeysView: Sendable {
    struct Row: Sendable {
        var kid: String
        var kidPath: String
        var algorithm: String
        var state: String
        var createdAt: String
        var createdAtISO: String
        var retiresAt: String
        /// Every key may be withdrawn; the active one hands over to the next key (the CLI's rule).
        var retirable: Bool
    }

    var chrome: PageChrome
    var onKeys = true
    var formCSRF: String
    var keys: [Row]
    var actionError: String?

    init(chrome: PageChrome, formCSRF: String, keys: [KeyMetadata], actionError: String?) {
        self.chrome = chrome
        self.formCSRF = formCSRF
        let order: [KeyState: Int] = [.active: 0, .next: 1, .retired: 2]
        self.keys = keys.sorted { (order[$0.state] ?? 3, $1.createdAt) < (order[$1.state] ?? 3, $0.createdAt) }.map { key in
            Row(
                kid: key.kid, kidPath: PortalPaths.segment(key.kid), algorithm: key.algorithm.rawValue, state: key.state.rawValue,
                createdAt: PortalDates.display(key.createdAt), createdAtISO: PortalDates.iso(key.createdAt),
                retiresAt: key.retiresAt.map { PortalDates.display($0) } ?? "—", retirable: true)
        }
        self.actionError = actionError
    }
}

struct AdminAuditView: Sendable {
    struct Row: Sendable {
        var time: String
        var timeISO: String
        var action: String
        var outcome: String
        var actor: String
        var organization: String
        var target: String
        var reason: String
        var clientIP: String
    }

    var chrome: PageChrome
    var onAudit = true
    var since: String
    var actor: String
    var org: String
    var action: String
    var session: String
    var limit: Int
    var events: [Row]
    var hasEvents: Bool
    var filterError: String?
}

struct AdminInvitationsView: Sendable {
    var chrome: PageChrome
    var onInvites = true
    var formCSRF: String
    var invitations: [InvitationRow]
    var hasInvitations: Bool
    var newCode: String?
    var newCodeLink: String?
    var actionError: String?

    init(chrome: PageChrome, formCSRF: String, invitations: [Invitation], now: Date, newCode: String?, issuer: String, actionError: String?) {
        self.chrome = chrome
        self.formCSRF = formCSRF
        self.invitations = invitations.map { InvitationRow($0, now: now) }
        hasInvitations = !invitations.isEmpty
        self.newCode = newCode
        newCodeLink = newCode.map { issuer + "/signup?invite=" + PortalPaths.segment($0) }
        self.actionError = actionError
    }
}
