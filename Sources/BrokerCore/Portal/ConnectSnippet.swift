import Foundation

/// How a member connects the SlideRule client to an organization's cluster, for the portal's
/// "how to connect" block: the client builds its URLs from a domain (`ps.<domain>` for
/// generation 1, `login.<domain>` for generation 2, shared/design/protocol.md), which is the
/// issuer's host without its `login.` or `ps.` label.
public struct ConnectSnippet: Sendable, Equatable {
    public var domain: String
    public var organization: String
    public var cluster: String
    public var username: String

    public init(issuer: String, organization: String, cluster: String, username: String) {
        let host = URL(string: issuer)?.host ?? issuer
        var domain = host
        for label in ["login.", "ps."] where domain.hasPrefix(label) { domain = String(domain.dropFirst(label.count)) }
        self.domain = domain
        self.organization = organization
        self.cluster = cluster
        self.username = username
    }

    /// Clients 5.0.2 and earlier: a password, from `~/.netrc` or the environment.
    public var netrcLine: String { "machine ps.\(domain) login \(username) password <your password>" }

    public var generation1Environment: String { "export PS_USERNAME=\(username)\nexport PS_PASSWORD='<your password>'" }

    public var generation1Python: String {
        "import sliderule\nsliderule.init(\"\(domain)\", organization=\"\(organization)\")"
    }

    /// The token request itself, for scripts.
    public var curl: String {
        "curl -s https://ps.\(domain)/api/org_token/ -H 'Content-Type: application/json' \\\n"
            + "     -d '{\"username\":\"\(username)\",\"password\":\"<your password>\",\"org_name\":\"\(organization)\"}'"
    }

    /// Clients 5.0.3 and later: a GitHub token.
    public var generation2Environment: String { "export SLIDERULE_GITHUB_TOKEN=<a GitHub token with read:org>" }

    public var generation2Python: String {
        "import sliderule\nsliderule.init(\"\(domain)\", organization=\"\(cluster)\")"
    }
}
