import BrokerCore
import Foundation

/// The "how to connect" block: ``ConnectSnippet``'s text as stored properties (Mustache reads
/// no computed ones).
struct SnippetView: Sendable {
    var netrcLine: String
    var generation1Environment: String
    var generation1Python: String
    var curl: String
    var generation2Environment: String
    var generation2Python: String

    init(_ snippet: ConnectSnippet) {
        netrcLine = snippet.netrcLine
        generation1Environment = snippet.generation1Environment
        generation1Python = snippet.generation1Python
        curl = snippet.curl
        generation2Environment = snippet.generation2Environment
        generation2Python = snippet.generation2Python
    }
}

/// Where the organization page shows an action's error.
struct OrganizationFormErrors: Sendable {
    var requests: String?
    var members: String?
    var policy: String?
    var invitations: String?
}

/// A row of an invitation list (the organization page, the admin's).
struct InvitationRow: Sendable {
    var id: String
    var role: String
    var state: String
    var expiresAt: String
    var expiresAtISO: String

    init(_ invitation: Invitation, now: Date) {
        id = invitation.id
        role = invitation.role.rawValue
        state = invitation.usedAt != nil ? "used" : (invitation.isOpen(at: now) ? "open" : "expired")
        expiresAt = PortalDates.display(invitation.expiresAt)
        expiresAtISO = PortalDates.iso(invitation.expiresAt)
    }
}

struct OrganizationView: Sendable {
    struct RoleOption: Sendable {
        var value: String
        var selected: Bool
    }

    struct RequestRow: Sendable {
        var username: String
        var usernamePath: String
        var requestedAt: String
        var requestedAtISO: String
    }

    struct MemberRow: Sendable {
        var username: String
        var usernamePath: String
        var role: String
        var status: String
        /// Whether the reader may change this member (their role is at most the reader's).
        var manageable: Bool
        var roleOptions: [RoleOption]
    }

    var chrome: PageChrome
    var formCSRF: String
    var organization: String
    var organizationPath: String
    var cluster: String
    var authority: String
    var grantable: [RoleOption]
    var requests: [RequestRow]
    var hasRequests: Bool
    var members: [MemberRow]
    var accessLifetime: String
    var audiences: String
    var brokerAccessLifetime: Int
    var snippet: SnippetView
    var requestsError: String?
    var membersError: String?
    var policyError: String?
    var invitations: [InvitationRow]
    var hasInvitations: Bool
    var invitationsError: String?
    /// A code just made, shown once (this answer is never cached: `no-store`).
    var newCode: String?
    var newCodeLink: String?

    init(
        chrome: PageChrome, formCSRF: String, overview: OrganizationOverview, snippet: ConnectSnippet, brokerAccessLifetime: Int,
        invitations: [Invitation], now: Date, newCode: String?, issuer: String, errors: OrganizationFormErrors = OrganizationFormErrors()
    ) {
        self.invitations = invitations.map { InvitationRow($0, now: now) }
        hasInvitations = !invitations.isEmpty
        invitationsError = errors.invitations
        self.newCode = newCode
        newCodeLink = newCode.map { issuer + "/signup?invite=" + PortalPaths.segment($0) }
        self.chrome = chrome
        self.formCSRF = formCSRF
        let organization = overview.organization
        self.organization = organization.name
        organizationPath = PortalPaths.segment(organization.name)
        cluster = organization.clusterName
        authority = overview.authority.rawValue
        grantable = overview.grantableRoles.map { RoleOption(value: $0.rawValue, selected: $0 == .member) }
        requests = overview.requests.map { request in
            RequestRow(
                username: request.username, usernamePath: PortalPaths.segment(request.username),
                requestedAt: PortalDates.display(request.requestedAt), requestedAtISO: PortalDates.iso(request.requestedAt))
        }
        hasRequests = !requests.isEmpty
        members = overview.members.map { member in
            MemberRow(
                username: member.username, usernamePath: PortalPaths.segment(member.username),
                role: member.membership.role.rawValue, status: member.membership.isActive ? "active" : "inactive",
                manageable: member.membership.role <= overview.authority,
                roleOptions: overview.grantableRoles.map { RoleOption(value: $0.rawValue, selected: $0 == member.membership.role) })
        }
        accessLifetime = organization.tokenPolicy.accessLifetime.map(String.init) ?? ""
        audiences = organization.tokenPolicy.audiences?.joined(separator: ", ") ?? ""
        self.brokerAccessLifetime = brokerAccessLifetime
        self.snippet = SnippetView(snippet)
        requestsError = errors.requests
        membersError = errors.members
        policyError = errors.policy
    }
}
