import BrokerCore
import Foundation

struct SignInView: Sendable {
    var chrome: PageChrome
    var csrf: String
    var next: String?
    var username: String
    var error: String?
    var signupOpen = false
    /// GitHub's device flow is configured: the "Sign in with GitHub" button.
    var githubEnabled = false
    /// With the web flow (`github_client_secret`): the link that starts it.
    var githubWebHref: String?
}

struct GitHubDeviceView: Sendable {
    var chrome: PageChrome
    var userCode: String
    var verificationURI: String
    var interval: Int
}

struct SignUpView: Sendable {
    var chrome: PageChrome
    /// `portal_signup: open`.
    var open: Bool
    /// `open` or `invite`: the form is shown, with its invitation field (required in `invite` mode).
    var acceptsSignUps: Bool
    /// GitHub's device flow is configured: "Sign up with GitHub".
    var githubEnabled = false
    var csrf: String
    /// The name typed, kept on a refusal (never the password).
    var typedName: String
    var error: String?
    var usernameError: String?
    var passwordError: String?
    var confirmError: String?
    /// The code from `?invite=` or as typed.
    var invitation = ""
    var invitationError: String?
}

struct SignOutView: Sendable {
    var chrome: PageChrome
    var csrf: String
}

struct ErrorView: Sendable {
    var chrome: PageChrome
    var heading: String
    var message: String
    var requestID: String?
    var backHref: String
    var backLabel: String
}

/// Where an account page shows an action's error: next to the form that caused it.
struct AccountFormErrors: Sendable {
    var memberships: String?
    var requests: String?
    var join: String?
    var sessions: String?
    var currentPassword: String?
    var newPassword: String?
    var confirmPassword: String?
    var github: String?
}

struct AccountView: Sendable {
    struct MembershipRow: Sendable {
        var organization: String
        var organizationPath: String
        /// Whether the holder manages it (owner or admin): its name links to its page.
        var manages: Bool
        var role: String
        var cluster: String
        var status: String
        /// How to connect the SlideRule client to it.
        var snippet: SnippetView
    }

    struct RequestRow: Sendable {
        var organization: String
        var organizationPath: String
        var cluster: String
        var requestedAt: String
        var requestedAtISO: String
    }

    struct JoinableRow: Sendable {
        var name: String
        var cluster: String
    }

    struct SessionRow: Sendable {
        var id: String
        var client: String
        var userAgent: String?
        var startedAt: String
        var startedAtISO: String
        var lastSeen: String
        var from: String
        var current: Bool
    }

    var chrome: PageChrome
    /// The CSRF token of every form on the page (bound to this browser's session).
    var formCSRF: String
    var username: String
    var githubLogin: String?
    var globalRole: String?
    var hasPassword: Bool
    var memberships: [MembershipRow]
    var hasMemberships: Bool
    var requests: [RequestRow]
    var hasRequests: Bool
    var joinable: [JoinableRow]
    var hasJoinable: Bool
    var sessions: [SessionRow]
    var membershipsError: String?
    var requestsError: String?
    var joinError: String?
    var sessionsError: String?
    var currentPasswordError: String?
    var newPasswordError: String?
    var confirmPasswordError: String?
    /// GitHub's device flow is configured: the link and unlink forms.
    var githubEnabled: Bool
    var githubError: String?

    init(
        chrome: PageChrome, formCSRF: String, user: User, overview: AccountOverview, joinable organizations: [Organization],
        issuer: String, githubEnabled: Bool, errors: AccountFormErrors = AccountFormErrors()
    ) {
        self.githubEnabled = githubEnabled
        githubError = errors.github
        self.chrome = chrome
        self.formCSRF = formCSRF
        username = user.username
        githubLogin = user.githubLogin
        globalRole = user.globalRole?.rawValue
        hasPassword = user.passwordHash != nil
        memberships = overview.memberships.map { entry in
            MembershipRow(
                organization: entry.organization.name, organizationPath: PortalPaths.segment(entry.organization.name),
                manages: entry.membership.isActive && entry.membership.role >= .owner,
                role: entry.membership.role.rawValue, cluster: entry.organization.clusterName,
                status: entry.membership.isActive ? "active" : "inactive",
                snippet: SnippetView(
                    ConnectSnippet(
                        issuer: issuer, organization: entry.organization.name, cluster: entry.organization.clusterName,
                        username: user.username)))
        }
        hasMemberships = !memberships.isEmpty
        requests = overview.pendingRequests.map { request in
            RequestRow(
                organization: request.organizationName, organizationPath: PortalPaths.segment(request.organizationName),
                cluster: request.clusterName, requestedAt: PortalDates.display(request.requestedAt),
                requestedAtISO: PortalDates.iso(request.requestedAt))
        }
        hasRequests = !requests.isEmpty
        joinable = organizations.map { JoinableRow(name: $0.name, cluster: $0.clusterName) }
        hasJoinable = !joinable.isEmpty
        sessions = overview.sessions.map { session in
            SessionRow(
                id: session.family.id, client: Self.describe(session.client), userAgent: session.family.origin?.userAgent,
                startedAt: PortalDates.display(session.family.authenticatedAt),
                startedAtISO: PortalDates.iso(session.family.authenticatedAt),
                lastSeen: session.lastSeenAt.map { PortalDates.display($0) } ?? "—",
                from: session.family.origin?.clientIP ?? "—", current: session.isCurrent)
        }
        membershipsError = errors.memberships
        requestsError = errors.requests
        joinError = errors.join
        sessionsError = errors.sessions
        currentPasswordError = errors.currentPassword
        newPasswordError = errors.newPassword
        confirmPasswordError = errors.confirmPassword
    }

    static func describe(_ client: AccountOverview.Client) -> String {
        switch client {
        case .generation1(let organization?): "SlideRule client (password), \(organization)"
        case .generation1(nil): "SlideRule client (password)"
        case .generation2: "SlideRule client (GitHub)"
        case .browser: "Browser"
        case .brokerAPI: "API session"
        }
    }
}

/// Names in portal URLs: one path segment, percent-encoded (a name may hold any character the
/// name policy allows).
enum PortalPaths {
    static func segment(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: .portalQueryValue) ?? ""
    }
}

enum PortalDates {
    static func display(_ date: Date, seconds: Bool = false) -> String {
        let style =
            seconds
            ? Date.VerbatimFormatStyle(
                format: "\(year: .defaultDigits)-\(month: .twoDigits)-\(day: .twoDigits) \(hour: .twoDigits(clock: .twentyFourHour, hourCycle: .zeroBased)):\(minute: .twoDigits):\(second: .twoDigits) UTC",
                timeZone: .gmt, calendar: Calendar(identifier: .gregorian))
            : Date.VerbatimFormatStyle(
                format: "\(year: .defaultDigits)-\(month: .twoDigits)-\(day: .twoDigits) \(hour: .twoDigits(clock: .twentyFourHour, hourCycle: .zeroBased)):\(minute: .twoDigits) UTC",
                timeZone: .gmt, calendar: Calendar(identifier: .gregorian))
        return date.formatted(style)
    }

    static func iso(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
