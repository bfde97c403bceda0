/// What every page's layout shows (the `head` partial): title, navigation, the sign-out form.
/// Mustache reads stored properties only (through `Mirror`), so views are plain structs.
///
/// A name Mustache does not find (or finds `nil`) is looked up in the enclosing context, the
/// page's view: so no field here may share a name with a field of any view, or a page's own
/// value would stand in for it (a sign-in form's empty `username` once showed the navigation of
/// a signed-in user). `PortalTemplateTests` checks the names.
struct PageChrome: Sendable {
    var siteName: String
    var title: String
    var stylesheet: String
    /// Set when signed in: the navigation and the sign-out form appear.
    var signedInAs: String?
    /// The session's CSRF token, for the sign-out form.
    var signOutCSRF: String?
    var notice: String?
    var onAccount = false
    /// A global admin: the navigation links to `/admin`.
    var showAdmin = false
    var onAdmin = false
    /// A `<meta http-equiv=refresh>` (no script): the device-flow page polls so.
    var refreshSeconds: Int?
}

/// The short messages a redirect may ask a page to show (`?notice=`): a fixed table, so no
/// free text ever travels in a URL.
enum Notice: String, CaseIterable {
    case signedOut = "signed-out"
    case sessionEnded = "session-ended"
    case signedOutEverywhere = "signed-out-everywhere"
    case requestSent = "request-sent"
    case requestWithdrawn = "request-withdrawn"
    case organizationLeft = "organization-left"
    case sessionSignedOut = "session-signed-out"
    case passwordChanged = "password-changed"
    case welcome
    case approved
    case declined
    case roleChanged = "role-changed"
    case memberRemoved = "member-removed"
    case policySaved = "policy-saved"
    case accountDisabled = "account-disabled"
    case accountEnabled = "account-enabled"
    case passwordReset = "password-reset"
    case sessionsEnded = "sessions-ended"
    case organizationCreated = "organization-created"
    case organizationDeleted = "organization-deleted"
    case keyRotated = "key-rotated"
    case keyWithdrawn = "key-withdrawn"
    case githubExpired = "github-expired"
    case githubDenied = "github-denied"
    case githubLinked = "github-linked"
    case githubUnlinked = "github-unlinked"
    case invitationRevoked = "invitation-revoked"

    var text: String {
        switch self {
        case .signedOut: "You are signed out."
        case .sessionEnded: "Your session has ended. Sign in again."
        case .signedOutEverywhere: "You are signed out everywhere."
        case .requestSent: "Your request is sent. An owner of the organization will answer it."
        case .requestWithdrawn: "Your request is withdrawn."
        case .organizationLeft: "You have left the organization."
        case .sessionSignedOut: "That session is signed out."
        case .passwordChanged: "Your password is changed, and your other sessions are signed out."
        case .welcome: "Welcome! Your account is ready. Ask to join your organization below."
        case .approved: "The request is approved."
        case .declined: "The request is declined."
        case .roleChanged: "The role is changed."
        case .memberRemoved: "The member is removed."
        case .policySaved: "The token policy is saved."
        case .accountDisabled: "The account is disabled, and signed out everywhere."
        case .accountEnabled: "The account is enabled."
        case .passwordReset: "The password is reset, and the account signed out everywhere."
        case .sessionsEnded: "The account is signed out everywhere."
        case .organizationCreated: "The organization is created."
        case .organizationDeleted: "The organization is deleted."
        case .keyRotated: "The keys are rotated."
        case .keyWithdrawn: "The key is withdrawn."
        case .githubExpired: "The GitHub sign-in expired or was cancelled. Start again."
        case .githubDenied: "The request was declined at GitHub."
        case .githubLinked: "Your GitHub user is linked: you can sign in with GitHub."
        case .githubUnlinked: "GitHub is unlinked, and you are signed out everywhere. Sign in with your password."
        case .invitationRevoked: "The invitation is revoked."
        }
    }
}
