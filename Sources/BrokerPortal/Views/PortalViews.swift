import BrokerCore
import Foundation

struct SignInView: Sendable {
    var chrome: PageChrome
    var csrf: String
    var next: String?
    var username: String
    var error: String?
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

struct AccountView: Sendable {
    struct MembershipRow: Sendable {
        var organization: String
        var role: String
        var cluster: String
        var status: String
    }

    struct RequestRow: Sendable {
        var organization: String
        var cluster: String
        var requestedAt: String
        var requestedAtISO: String
    }

    struct SessionRow: Sendable {
        var client: String
        var userAgent: String?
        var startedAt: String
        var startedAtISO: String
        var lastSeen: String
        var from: String
        var current: Bool
    }

    var chrome: PageChrome
    var username: String
    var githubLogin: String?
    var globalRole: String?
    var memberships: [MembershipRow]
    var hasMemberships: Bool
    var requests: [RequestRow]
    var hasRequests: Bool
    var sessions: [SessionRow]

    init(chrome: PageChrome, user: User, overview: AccountOverview) {
        self.chrome = chrome
        username = user.username
        githubLogin = user.githubLogin
        globalRole = user.globalRole?.rawValue
        memberships = overview.memberships.map { entry in
            MembershipRow(
                organization: entry.organization.name, role: entry.membership.role.rawValue,
                cluster: entry.organization.clusterName, status: entry.membership.isActive ? "active" : "inactive")
        }
        hasMemberships = !memberships.isEmpty
        requests = overview.pendingRequests.map { request in
            RequestRow(
                organization: request.organizationName, cluster: request.clusterName,
                requestedAt: PortalDates.display(request.requestedAt), requestedAtISO: PortalDates.iso(request.requestedAt))
        }
        hasRequests = !requests.isEmpty
        sessions = overview.sessions.map { session in
            SessionRow(
                client: Self.describe(session.client), userAgent: session.family.origin?.userAgent,
                startedAt: PortalDates.display(session.family.authenticatedAt),
                startedAtISO: PortalDates.iso(session.family.authenticatedAt),
                lastSeen: session.lastSeenAt.map(PortalDates.display) ?? "—",
                from: session.family.origin?.clientIP ?? "—", current: session.isCurrent)
        }
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

enum PortalDates {
    static func display(_ date: Date) -> String {
        date.formatted(
            Date.VerbatimFormatStyle(
                format: "\(year: .defaultDigits)-\(month: .twoDigits)-\(day: .twoDigits) \(hour: .twoDigits(clock: .twentyFourHour, hourCycle: .zeroBased)):\(minute: .twoDigits) UTC",
                timeZone: .gmt, calendar: Calendar(identifier: .gregorian)))
    }

    static func iso(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
