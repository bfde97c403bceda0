/// How a holder proved who they are at login: the `amr` claim of their tokens (RFC 8176's value
/// where one exists) and of their session. Tokens and stored sessions keep the raw values, so
/// that a value written by a later release still reads back; the broker itself only writes these.
///
/// ```swift
/// let methods: [AuthenticationMethod] = [.password]
/// methods.map(\.rawValue)                                   // ["pwd"]
/// AuthenticationMethod.includesGitHub(["github_device"])   // true
/// ```
public enum AuthenticationMethod: String, Sendable, CaseIterable {
    /// A password (RFC 8176 `pwd`).
    case password = "pwd"
    /// A GitHub token checked against GitHub: generation-1 logins, session sign-ins, the portal.
    case github
    /// A GitHub personal access token at `/auth/github/pat` or in a token exchange.
    case githubPAT = "github_pat"
    /// GitHub's device flow.
    case githubDevice = "github_device"

    /// Whether GitHub vouched for the holder, so that GitHub (not only the store) may decide
    /// their memberships at renewal.
    public var isGitHub: Bool { self != .password }

    /// Whether a session's or token's stored `amr` names a GitHub method.
    public static func includesGitHub(_ methods: [String]) -> Bool {
        methods.contains { AuthenticationMethod(rawValue: $0)?.isGitHub ?? false }
    }
}
