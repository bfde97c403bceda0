import BrokerCrypto

/// The claims of every access token: RFC 9068 JWT access-token claims plus the generation-1
/// claims that existing SlideRule gateways check (`token_type`, `org_name`, `user_id`,
/// `user_name`). One format serves both client generations.
///
/// ```swift
/// let claims = try checks.verify(bearer, audience: "cluster1", now: Date()) { keys[$0] }
/// print(claims.subject, claims.organizationRoles)
/// let payload = claims.encoded()   // what the issuer signs
/// ```
public struct AccessTokenClaims: Sendable, Equatable {
    public var issuer: String
    /// `sub`: the broker account's username, unique among the broker's accounts (for a GitHub
    /// login too: never the GitHub login, which a local account may share).
    public var subject: String
    /// Cluster names the holder may use; never a wildcard.
    public var audience: [String]
    public var organization: String
    public var organizationRoles: [String]
    public var issuedAt: Int64
    public var notBefore: Int64
    public var expiresAt: Int64
    public var tokenID: String
    public var authenticatedAt: Int64
    public var authenticationMethods: [String]
    public var identityProvider: String
    public var tokenType: String = "access"
    public var userID: Int64
    public var username: String
    /// Generation-2 tokens, which name no single org: each org the holder belongs to and the
    /// holder's roles there, e.g. `{"orgA": ["member"], "orgB": ["owner", "member"]}`.
    public var memberships: [String: [String]]?
    /// `cluster_roles`, generation-2 tokens: the holder's roles at each cluster in `aud`, those of
    /// the organization owning the cluster. On the wire each value is one space-separated string
    /// (`{"cluster1": "owner member"}`), the form HAProxy 2.6 can read and forward as it is.
    /// `org_roles` of such a token holds only the roles common to every organization it names.
    public var clusterRoles: [String: [String]]?
    /// `sid`: the refresh family (session) an organization token belongs to, so that an online
    /// check (introspection) can tell when its session was revoked.
    public var sessionID: String?
    /// `role`: the holder's global role in broker session tokens (`admin`, `introspector`).
    public var globalRole: String?
    /// `github_login`: tokens of a GitHub login carry the GitHub login, for display only; the
    /// account is `sub`.
    public var githubLogin: String?
    /// `client_id` (RFC 9068 section 2.2): the OAuth client the token was issued to. Every token
    /// the broker issues carries it; `nil` only in tokens signed before it did, which stay valid
    /// until they expire.
    public var clientID: String?

    public init(
        issuer: String, subject: String, audience: [String], organization: String, organizationRoles: [String],
        issuedAt: Int64, notBefore: Int64, expiresAt: Int64, tokenID: String, authenticatedAt: Int64,
        authenticationMethods: [String], identityProvider: String, userID: Int64, username: String,
        memberships: [String: [String]]? = nil, clusterRoles: [String: [String]]? = nil, sessionID: String? = nil,
        globalRole: String? = nil, githubLogin: String? = nil, clientID: String? = nil
    ) {
        self.clientID = clientID
        self.clusterRoles = clusterRoles
        self.githubLogin = githubLogin
        self.sessionID = sessionID
        self.globalRole = globalRole
        self.issuer = issuer
        self.subject = subject
        self.audience = audience
        self.organization = organization
        self.organizationRoles = organizationRoles
        self.issuedAt = issuedAt
        self.notBefore = notBefore
        self.expiresAt = expiresAt
        self.tokenID = tokenID
        self.authenticatedAt = authenticatedAt
        self.authenticationMethods = authenticationMethods
        self.identityProvider = identityProvider
        self.userID = userID
        self.username = username
        self.memberships = memberships
    }

    /// Every claim name `encoded()` can write, in its order.
    public static let claimNames = [
        "iss", "sub", "aud", "org", "org_roles", "iat", "nbf", "exp", "jti", "client_id", "auth_time", "amr", "idp",
        "token_type", "org_name", "user_id", "user_name", "memberships", "cluster_roles", "sid", "role",
        "github_login",
    ]

    /// The JWT payload. Written by hand: Foundation's JSONEncoder alone costs more than the
    /// whole per-token budget (see BENCHMARKS.md).
    public func encoded() -> [UInt8] {
        var json = JSONWriter(capacity: 512)
        json.beginObject()
        json.key("iss"); json.string(issuer)
        json.key("sub"); json.string(subject)
        json.field("aud", strings: audience)
        json.key("org"); json.string(organization)
        json.field("org_roles", strings: organizationRoles)
        json.key("iat"); json.int(issuedAt)
        json.key("nbf"); json.int(notBefore)
        json.key("exp"); json.int(expiresAt)
        json.key("jti"); json.string(tokenID)
        if let clientID { json.key("client_id"); json.string(clientID) }
        json.key("auth_time"); json.int(authenticatedAt)
        json.field("amr", strings: authenticationMethods)
        json.key("idp"); json.string(identityProvider)
        json.key("token_type"); json.string(tokenType)
        json.key("org_name"); json.string(organization)
        json.key("user_id"); json.int(userID)
        json.key("user_name"); json.string(username)
        if let memberships {
            json.key("memberships")
            json.beginObject()
            for (organization, roles) in memberships.sorted(by: { $0.key < $1.key }) {
                json.field(organization, strings: roles)
            }
            json.endObject()
        }
        if let clusterRoles { Self.write(clusterRoles: clusterRoles, to: &json) }
        if let sessionID { json.key("sid"); json.string(sessionID) }
        if let globalRole { json.key("role"); json.string(globalRole) }
        if let githubLogin { json.key("github_login"); json.string(githubLogin) }
        json.endObject()
        return json.bytes
    }

    /// Reads the claims of a verified payload. Every claim the broker issues is required, but
    /// `client_id`, which tokens signed before it was issued lack.
    public init(json: [String: JSONValue]) throws(TokenRejection) {
        func string(_ name: String) throws(TokenRejection) -> String {
            guard case .string(let value)? = json[name] else { throw .missingClaim(name) }
            return value
        }
        func integer(_ name: String) throws(TokenRejection) -> Int64 {
            guard case .integer(let value)? = json[name] else { throw .missingClaim(name) }
            return value
        }
        func strings(_ name: String) throws(TokenRejection) -> [String] {
            switch json[name] {
            case .string(let value)?: return [value]
            case .array(let values)?:
                var result: [String] = []
                for value in values {
                    guard case .string(let text) = value else { throw .missingClaim(name) }
                    result.append(text)
                }
                return result
            default: throw .missingClaim(name)
            }
        }
        issuer = try string("iss")
        subject = try string("sub")
        audience = try strings("aud")
        organization = try string("org")
        organizationRoles = try strings("org_roles")
        issuedAt = try integer("iat")
        notBefore = try integer("nbf")
        expiresAt = try integer("exp")
        tokenID = try string("jti")
        authenticatedAt = try integer("auth_time")
        authenticationMethods = try strings("amr")
        identityProvider = try string("idp")
        tokenType = try string("token_type")
        userID = try integer("user_id")
        username = try string("user_name")
        switch json["memberships"] {
        case nil:
            memberships = nil
        case .object(let members)?:
            var result: [String: [String]] = [:]
            for (organization, roles) in members {
                guard case .array(let values) = roles else { throw .missingClaim("memberships") }
                result[organization] = try values.map { value throws(TokenRejection) in
                    guard case .string(let role) = value else { throw .missingClaim("memberships") }
                    return role
                }
            }
            memberships = result
        default:
            throw .missingClaim("memberships")
        }
        switch json["cluster_roles"] {
        case nil:
            clusterRoles = nil
        case .object(let clusters)?:
            var result: [String: [String]] = [:]
            for (cluster, roles) in clusters {
                guard case .string(let list) = roles else { throw .missingClaim("cluster_roles") }
                result[cluster] = list.split(separator: " ").map(String.init)
            }
            clusterRoles = result
        default:
            throw .missingClaim("cluster_roles")
        }
        func optionalString(_ name: String) throws(TokenRejection) -> String? {
            switch json[name] {
            case nil: return nil
            case .string(let value)?: return value
            default: throw .missingClaim(name)
            }
        }
        sessionID = try optionalString("sid")
        globalRole = try optionalString("role")
        githubLogin = try optionalString("github_login")
        clientID = try optionalString("client_id")
    }
}

extension AccessTokenClaims {
    /// `"cluster_roles": {"<cluster>": "<role> <role>", ...}`, in the token and in introspection.
    public static func write(clusterRoles: [String: [String]], to json: inout JSONWriter) {
        json.key("cluster_roles")
        json.beginObject()
        for (cluster, roles) in clusterRoles.sorted(by: { $0.key < $1.key }) {
            json.key(cluster); json.string(roles.joined(separator: " "))
        }
        json.endObject()
    }

    /// The holder's roles at `cluster`, what a gateway of that cluster forwards: the token's
    /// `cluster_roles` entry for it when the token carries `cluster_roles` (none when it has no
    /// entry: another organization's roles never stand in), otherwise `org_roles` (a token for
    /// one organization).
    public func roles(atCluster cluster: String) -> [String] {
        guard let clusterRoles else { return organizationRoles }
        return clusterRoles[cluster] ?? []
    }
}
