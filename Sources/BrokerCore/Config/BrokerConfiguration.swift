import BrokerCrypto
import Foundation

/// Every setting of the broker, with its default. Loaded by the `broker` command from
/// `config/broker.yaml`, then `BROKER_<KEY>` environment variables, then flags; documented key by
/// key in `config/broker.yaml`. Durations are whole seconds.
public struct BrokerConfiguration: Sendable, Equatable {
    /// `iss` of every token, and the base of the URLs in the discovery document.
    public var issuer: String = "http://127.0.0.1:8080"
    public var host: String = "127.0.0.1"
    /// 0 asks the system for a free port (tests use it).
    public var port: Int = 8080
    /// Holds the SQLite database.
    public var dataDirectory: String = "./data"
    /// A shared PostgreSQL database (``DatabaseURL``) instead of SQLite in `data_dir`; empty:
    /// SQLite. Its password is never logged (``DatabaseURL`` masks it).
    public var databaseURL: String = ""
    /// A file holding the database password (one line), so that it stays out of the URL.
    public var databasePasswordFile: String = ""
    /// Connections each broker process opens to PostgreSQL at most.
    public var databasePoolSize: Int = 10
    /// Seconds to wait for a database connection before answering 503.
    public var databaseConnectTimeout: Int = 5
    /// Seconds a statement may run before PostgreSQL cancels it (and the request answers 503).
    public var databaseStatementTimeout: Int = 5
    /// Holds the signing keys (mode 0700, files 0600).
    public var keysDirectory: String = "./keys"
    public var signingAlgorithm: JWSAlgorithm = .rs256
    public var accessLifetime: Int = 3600
    public var refreshLifetime: Int = 86_400
    public var sessionMaxLifetime: Int = 604_800
    public var refreshReuseGrace: Int = 2
    /// Tolerated clock difference when checking `exp`, `nbf` and `iat` of tokens we verify.
    public var clockSkew: Int = 30
    public var argon2: Argon2idParameters = .owaspMinimum
    /// How many password hashes may be computed at once (argon2id needs `argon2.memoryKiB` each).
    public var passwordHashConcurrency: Int = max(1, min(4, ProcessInfo.processInfo.activeProcessorCount))
    public var logLevel: String = "info"
    /// `text` (one human line per event) or `json` (one JSON object per line, for collectors).
    public var logFormat: String = "text"

    // MARK: Key ring
    /// `Cache-Control: max-age` of `/.well-known/jwks.json` and `/auth/pem`.
    public var jwksMaxAge: Int = 300
    /// How long a `next` key is published before a rotation may promote it (>= jwks_max_age).
    public var keyPrepublication: Int = 600
    /// Scheduled rotation period; 0 = off.
    public var keyRotationPeriod: Int = 0
    /// How often a running server looks for a ring changed by another process (`broker keys`).
    public var keyReloadInterval: Int = 2
    /// A file holding 32 random bytes in base64 (`openssl rand -base64 32`): the key-encryption
    /// key that seals the private keys and server secrets of a key ring kept in the database
    /// (``KeyEncryptionKey``). Empty: none (a ring in `keys_dir` needs none).
    public var keyEncryptionKeyFile: String = ""

    // MARK: GitHub (generation-2 logins and GitHub-linked accounts)
    public var githubAPIURL: String = "https://api.github.com"
    public var githubWebURL: String = "https://github.com"
    /// The OAuth app's client id, needed for the device flow and the web flow.
    public var githubClientID: String = ""
    /// The OAuth app's client secret, needed for the web flow only (the portal's GitHub sign-in
    /// through GitHub's authorize page). A secret: masked by `broker config check`, never logged.
    /// Better kept in ``githubClientSecretFile``; read it with ``githubClientSecretValue()``.
    public var githubClientSecret: String = ""
    /// A file holding the client secret (one line), so that it stays out of the configuration
    /// file and the environment.
    public var githubClientSecretFile: String = ""
    /// An HTTP(S) proxy for GitHub calls; proxy variables of the environment are ignored so that
    /// only configuration decides where tokens travel.
    public var githubProxy: String = ""
    public var githubConnectTimeout: Int = 3
    public var githubTimeout: Int = 10
    /// How long a verified GitHub identity is reused without asking GitHub again.
    public var githubIdentityTTL: Int = 300
    /// How long a token GitHub rejected (401) is answered from memory.
    public var githubRejectionTTL: Int = 30
    /// Lifetime of generation-2 tokens (clients 5.5 and later never refresh).
    public var generation2AccessLifetime: Int = 43_200
    /// The organization named by `org`/`org_roles` in generation-2 tokens, when the holder
    /// belongs to it; otherwise the first organization the holder belongs to.
    public var homeOrganization: String = ""
    /// The `client_id` (RFC 9068) of tokens issued through the two SlideRule protocols, whose
    /// clients send none: `sliderule` unless an operator tells them apart from another one.
    public var slideRuleClientID: ClientID = .slideRuleDefault
    /// Broker organizations whose members GitHub decides (`github_orgs` in the file).
    public var githubOrganizations: [GitHubOrganizationMapping] = []

    // MARK: Scaling (the generation-1 client's scaling calls, docs/api.md)
    /// Where the broker forwards the generation-1 client's scaling calls (`/api/org_num_nodes/...`
    /// and the like), with the caller's identity in the headers a gateway adds: an absolute
    /// http(s) URL, perhaps with a path prefix. Empty: those calls are answered 501.
    public var provisionerURL: String = ""
    /// Seconds a forwarded call may take, connection and answer included (504 past it).
    public var provisionerTimeout: Int = 10

    // MARK: Administration and sessions
    /// Lifetime of broker session tokens (`aud` = issuer), which authenticate the admin API.
    public var adminSessionLifetime: Int = 900

    // MARK: Portal (the HTML pages, docs/portal.md)
    /// Whether the broker serves the portal's pages.
    public var portalEnabled: Bool = true
    /// A browser's session ends this long after its sign-in, whatever it does (capped at
    /// `session_max_lifetime`, so that a limit set for every session holds for browsers too).
    public var portalSessionLifetime: Int = 28_800
    /// A browser's session ends after this long without a request (capped at its lifetime).
    public var portalIdleTimeout: Int = 1800
    /// Cookies without `Secure` and the `__Host-` prefix: only for an `http://` issuer on loopback
    /// (development), refused otherwise.
    public var portalInsecureCookies: Bool = false
    /// Who may create an account at `/signup`: nobody (`closed`) or anyone (`open`).
    public var portalSignup: PortalSignupMode = .closed
    /// Sign-ups from one address (IPv6: its /64) per `login_throttle_window`, successful or not.
    public var portalSignupThrottleIP: Int = 10
    /// On first start of an empty store, this account is created as a global admin (with
    /// ``bootstrapAdminPassword`` or the contents of ``bootstrapAdminPasswordFile``). Empty: none.
    public var bootstrapAdmin: String = ""
    public var bootstrapAdminPassword: String = ""
    public var bootstrapAdminPasswordFile: String = ""

    // MARK: Audit trail
    /// The append-only audit log (JSON lines). Empty: `<data_dir>/audit.log`.
    public var auditLog: String = ""
    /// What happens when an audit line cannot be written.
    public var auditFailureMode: AuditFailureMode = .failClosed

    // MARK: Brute-force protection
    /// Sliding window over which failed logins are counted, in seconds.
    public var loginThrottleWindow: Int = 900
    /// Failed logins allowed per (username, client IP) within the window.
    public var loginThrottleUserIP: Int = 5
    /// Failed logins allowed per username across all client IPs within the window (against
    /// password spraying; the account is throttled, never locked).
    public var loginThrottleUser: Int = 20
    /// Failed logins allowed per client IP across all usernames within the window.
    public var loginThrottleIP: Int = 100
    /// How many usernames, addresses or pairs each throttle counter (login and GitHub) remembers
    /// at most; keys with failures inside the window are never forgotten (docs/brute-force.md).
    public var loginThrottleTrackedKeys: Int = LoginThrottlePolicy.defaultMaximumTrackedKeys
    /// The least time, in milliseconds, a failed password login takes to answer, whatever the
    /// account's existence or hash kind (0: no padding). Set it above the slowest verification of
    /// any stored hash (see docs/security.md, "Timing").
    public var loginFailureFloorMilliseconds: Int = 1000
    /// Sliding window over which GitHub logins are counted per client IP, in seconds.
    public var githubLoginThrottleWindow: Int = 60
    /// GitHub logins (successful or not, device polls included) allowed per client IP within
    /// the window: each costs a call to GitHub.
    public var githubLoginThrottleIP: Int = 60
    /// Peers whose `X-Forwarded-For` is believed (IP addresses or CIDR blocks); the client IP is
    /// otherwise the socket's peer.
    public var trustedProxies: [String] = []

    // MARK: Storage growth
    /// Sliding window over which the renewals of one session are counted, in seconds.
    public var refreshThrottleWindow: Int = 60
    /// Renewals (refreshes) allowed per session within the window; never below what a SlideRule
    /// client's own cadence needs (see ``SessionRefreshThrottlePolicy``).
    public var refreshThrottleSession: Int = 6
    /// How often a running server deletes expired sessions, spent refresh tokens and expired
    /// revocations, in seconds; 0: never (run `broker maintenance prune` instead).
    public var pruneInterval: Int = 600
    /// Rows deleted per transaction while pruning.
    public var pruneBatchSize: Int = 500

    // MARK: Operations
    /// How long SIGTERM waits for in-flight requests before the server exits, in seconds.
    public var shutdownGrace: Int = 10
    /// The address of a listener of its own for `GET /metrics` (`metrics_port` set); nil:
    /// loopback.
    public var metricsHost: String?
    /// The port of that listener (0 picks a free one). nil: `/metrics` is served on the public
    /// listener; set: only on this one, and the public listener answers 404 for it.
    public var metricsPort: Int?

    // MARK: Connections (both listeners; see docs/operations.md, "Connections")
    /// Seconds a client has to send a request's head, from the connection's start or from the
    /// first byte after a keep-alive pause.
    public var httpHeaderTimeout: Int = 10
    /// Seconds a client has to send a request's body, from the end of its head.
    public var httpBodyTimeout: Int = 30
    /// Seconds a kept-alive connection may wait for its next request.
    public var httpIdleTimeout: Int = 60
    /// Connections open at once. nil: derived from the descriptor limit (`ulimit -n`).
    public var maxConnections: Int?
    /// Connections open at once from one address (trusted proxies excepted). nil: a quarter of
    /// `max_connections`.
    public var maxConnectionsPerAddress: Int?

    /// Whether the broker may send browsers through GitHub's OAuth web flow: the client id and a
    /// client secret (given, or in a file) are both set.
    public var githubWebFlowEnabled: Bool {
        !githubClientID.isEmpty && (!githubClientSecret.isEmpty || !githubClientSecretFile.isEmpty)
    }

    /// Where the metrics listener binds, when there is one: loopback unless `metrics_host` says.
    public var metricsListenHost: String { metricsHost ?? "127.0.0.1" }

    public init() {}

    /// The names of the keys, as in the YAML file (`BROKER_` + upper case in the environment).
    public static let keys: [String] = [
        "issuer", "host", "port", "data_dir", "keys_dir", "signing_alg", "access_lifetime",
        "refresh_lifetime", "session_max_lifetime", "refresh_reuse_grace", "clock_skew",
        "argon2_memory_kib", "argon2_iterations", "argon2_parallelism", "password_hash_concurrency",
        "log_level", "log_format", "jwks_max_age", "key_prepublication", "key_rotation_period", "key_reload_interval",
        "key_encryption_key_file",
        "github_api_url", "github_web_url", "github_client_id", "github_client_secret", "github_client_secret_file",
        "github_proxy", "github_connect_timeout",
        "github_timeout", "github_identity_ttl", "github_rejection_ttl", "generation2_access_lifetime", "home_org",
        "sliderule_client_id",
        "provisioner_url", "provisioner_timeout",
        "admin_session_lifetime", "bootstrap_admin", "bootstrap_admin_password", "bootstrap_admin_password_file",
        "audit_log", "audit_failure_mode", "login_throttle_window", "login_throttle_user_ip", "login_throttle_user",
        "login_throttle_ip", "trusted_proxies", "shutdown_grace", "metrics_host", "metrics_port",
        "github_login_throttle_window", "github_login_throttle_ip", "login_failure_floor_ms",
        "login_throttle_tracked_keys",
        "refresh_throttle_window", "refresh_throttle_session", "prune_interval", "prune_batch_size",
        "http_header_timeout", "http_body_timeout", "http_idle_timeout", "max_connections", "max_connections_per_address",
        "database_url", "database_password_file", "database_pool_size", "database_connect_timeout",
        "database_statement_timeout",
        "portal", "portal_session_lifetime", "portal_idle_timeout", "portal_insecure_cookies", "portal_signup",
        "portal_signup_throttle_ip",
    ]

    /// Keys whose value is structured (a mapping), set with ``setGitHubOrganizations(_:source:)``.
    public static let structuredKeys: [String] = ["github_orgs"]

    /// Sets one key from its textual form, as found in a file, the environment or a flag.
    /// - Throws: ``ConfigurationError`` naming the key, the source and what is expected.
    public mutating func set(_ key: String, to text: String, source: String) throws {
        func fail(_ expected: String) -> ConfigurationError {
            ConfigurationError("\(source): \(key) must be \(expected), got \"\(text.prefix(80))\"")
        }
        func integer(_ range: ClosedRange<Int>, _ expected: String) throws -> Int {
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
                throw fail(expected)
            }
            return value
        }
        func flag() throws -> Bool {
            switch text.trimmingCharacters(in: .whitespaces).lowercased() {
            case "true", "on", "yes": return true
            case "false", "off", "no": return false
            default: throw fail("on or off (true or false)")
            }
        }
        func duration() throws -> Int { try integer(1...(10 * 365 * 86_400), "a whole number of seconds > 0") }
        func uint32(_ range: ClosedRange<Int>) throws -> UInt32 {
            UInt32(try integer(range, "an integer in \(range.lowerBound)...\(range.upperBound)"))
        }
        switch key {
        case "issuer": issuer = text
        case "host": host = text
        case "port": port = try integer(0...65_535, "a port number (0...65535)")
        case "data_dir": dataDirectory = text
        case "keys_dir": keysDirectory = text
        case "database_url": databaseURL = text.trimmingCharacters(in: .whitespaces)
        case "database_password_file": databasePasswordFile = text
        case "database_pool_size": databasePoolSize = try integer(1...1000, "an integer in 1...1000")
        case "database_connect_timeout":
            databaseConnectTimeout = try integer(1...300, "a whole number of seconds in 1...300")
        case "database_statement_timeout":
            databaseStatementTimeout = try integer(1...3600, "a whole number of seconds in 1...3600")
        case "signing_alg":
            guard let algorithm = JWSAlgorithm(rawValue: text) else { throw fail("one of RS256, ES256, EdDSA, Ed25519") }
            signingAlgorithm = algorithm
        case "access_lifetime": accessLifetime = try duration()
        case "refresh_lifetime": refreshLifetime = try duration()
        case "session_max_lifetime": sessionMaxLifetime = try duration()
        case "refresh_reuse_grace": refreshReuseGrace = try integer(0...60, "a whole number of seconds in 0...60")
        case "clock_skew": clockSkew = try integer(0...300, "a whole number of seconds in 0...300")
        case "argon2_memory_kib": argon2.memoryKiB = try uint32(8...4_194_304)
        case "argon2_iterations": argon2.iterations = try uint32(1...100)
        case "argon2_parallelism": argon2.parallelism = try uint32(1...64)
        case "password_hash_concurrency": passwordHashConcurrency = try integer(1...256, "an integer in 1...256")
        case "log_format":
            guard ["text", "json"].contains(text) else { throw fail("text or json") }
            logFormat = text
        case "log_level":
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            guard levels.contains(text) else { throw fail("one of \(levels.joined(separator: ", "))") }
            logLevel = text
        case "jwks_max_age": jwksMaxAge = try integer(0...86_400, "a whole number of seconds in 0...86400")
        case "key_prepublication": keyPrepublication = try integer(0...(30 * 86_400), "a whole number of seconds in 0...2592000")
        case "key_rotation_period": keyRotationPeriod = try integer(0...(3650 * 86_400), "a whole number of seconds (0 = off)")
        case "key_reload_interval": keyReloadInterval = try integer(1...300, "a whole number of seconds in 1...300")
        case "key_encryption_key_file": keyEncryptionKeyFile = text
        case "github_api_url": githubAPIURL = text
        case "github_web_url": githubWebURL = text
        case "github_client_id": githubClientID = text
        case "github_client_secret": githubClientSecret = text
        case "github_client_secret_file": githubClientSecretFile = text
        case "github_proxy": githubProxy = text
        case "github_connect_timeout": githubConnectTimeout = try integer(1...60, "a whole number of seconds in 1...60")
        case "github_timeout": githubTimeout = try integer(1...120, "a whole number of seconds in 1...120")
        case "github_identity_ttl": githubIdentityTTL = try integer(0...86_400, "a whole number of seconds in 0...86400")
        case "github_rejection_ttl": githubRejectionTTL = try integer(0...3600, "a whole number of seconds in 0...3600")
        case "generation2_access_lifetime": generation2AccessLifetime = try duration()
        case "home_org": homeOrganization = text
        case "sliderule_client_id":
            do {
                slideRuleClientID = try ClientID(validating: text)
            } catch {
                throw fail("1 to \(ClientID.maximumLength) printable ASCII characters without spaces")
            }
        case "provisioner_url": provisionerURL = text.trimmingCharacters(in: .whitespaces)
        case "provisioner_timeout": provisionerTimeout = try integer(1...300, "a whole number of seconds in 1...300")
        case "admin_session_lifetime": adminSessionLifetime = try integer(60...86_400, "a whole number of seconds in 60...86400")
        case "portal": portalEnabled = try flag()
        case "portal_session_lifetime": portalSessionLifetime = try integer(300...(30 * 86_400), "a whole number of seconds in 300...2592000")
        case "portal_idle_timeout": portalIdleTimeout = try integer(60...(30 * 86_400), "a whole number of seconds in 60...2592000")
        case "portal_insecure_cookies": portalInsecureCookies = try flag()
        case "portal_signup":
            guard let mode = PortalSignupMode(rawValue: text) else { throw fail("closed, open or invite") }
            portalSignup = mode
        case "portal_signup_throttle_ip": portalSignupThrottleIP = try integer(1...100_000, "an integer in 1...100000")
        case "bootstrap_admin": bootstrapAdmin = text
        case "bootstrap_admin_password": bootstrapAdminPassword = text
        case "bootstrap_admin_password_file": bootstrapAdminPasswordFile = text
        case "audit_log": auditLog = text
        case "audit_failure_mode":
            guard let mode = AuditFailureMode(rawValue: text) else { throw fail("closed or open") }
            auditFailureMode = mode
        case "login_throttle_window": loginThrottleWindow = try integer(1...86_400, "a whole number of seconds in 1...86400")
        case "login_throttle_user_ip": loginThrottleUserIP = try integer(1...100_000, "an integer in 1...100000")
        case "login_throttle_user": loginThrottleUser = try integer(1...100_000, "an integer in 1...100000")
        case "login_throttle_ip": loginThrottleIP = try integer(1...1_000_000, "an integer in 1...1000000")
        case "login_throttle_tracked_keys":
            loginThrottleTrackedKeys = try integer(10...10_000_000, "an integer in 10...10000000")
        case "github_login_throttle_window":
            githubLoginThrottleWindow = try integer(1...86_400, "a whole number of seconds in 1...86400")
        case "login_failure_floor_ms":
            loginFailureFloorMilliseconds = try integer(0...60_000, "a whole number of milliseconds in 0...60000")
        case "github_login_throttle_ip": githubLoginThrottleIP = try integer(1...1_000_000, "an integer in 1...1000000")
        case "refresh_throttle_window":
            refreshThrottleWindow = try integer(1...3600, "a whole number of seconds in 1...3600")
        case "refresh_throttle_session": refreshThrottleSession = try integer(1...10_000, "an integer in 1...10000")
        case "prune_interval": pruneInterval = try integer(0...(7 * 86_400), "a whole number of seconds in 0...604800 (0 = off)")
        case "prune_batch_size": pruneBatchSize = try integer(1...100_000, "an integer in 1...100000")
        case "trusted_proxies":
            trustedProxies = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        case "shutdown_grace": shutdownGrace = try integer(0...3600, "a whole number of seconds in 0...3600")
        case "metrics_host": metricsHost = text
        case "metrics_port": metricsPort = try integer(0...65_535, "a port number (0...65535)")
        case "http_header_timeout": httpHeaderTimeout = try integer(1...3600, "a whole number of seconds in 1...3600")
        case "http_body_timeout": httpBodyTimeout = try integer(1...3600, "a whole number of seconds in 1...3600")
        case "http_idle_timeout": httpIdleTimeout = try integer(1...86_400, "a whole number of seconds in 1...86400")
        case "max_connections": maxConnections = try integer(1...1_000_000, "an integer in 1...1000000")
        case "max_connections_per_address":
            maxConnectionsPerAddress = try integer(1...1_000_000, "an integer in 1...1000000")
        default:
            throw ConfigurationError("\(source): unknown key \(key) (known: \(Self.keys.joined(separator: ", ")))")
        }
    }

    /// Checks the relations between keys and normalizes the issuer.
    public mutating func validate() throws {
        while issuer.hasSuffix("/") { issuer.removeLast() }
        guard let url = URL(string: issuer), let scheme = url.scheme, ["http", "https"].contains(scheme),
            url.host != nil, url.query == nil, url.fragment == nil
        else {
            throw ConfigurationError("issuer must be an http(s) URL without query or fragment, got \"\(issuer)\"")
        }
        guard !host.isEmpty else { throw ConfigurationError("host must not be empty") }
        guard !dataDirectory.isEmpty, !keysDirectory.isEmpty else {
            throw ConfigurationError("data_dir and keys_dir must not be empty")
        }
        if !databaseURL.isEmpty {
            let url = try DatabaseURL(parsing: databaseURL)
            if url.password != nil, !databasePasswordFile.isEmpty {
                throw ConfigurationError(
                    "database_url has a password and database_password_file is set: give the password in one place")
            }
        } else if !databasePasswordFile.isEmpty {
            throw ConfigurationError("database_password_file is set but database_url is empty")
        }
        if !githubClientSecret.isEmpty, !githubClientSecretFile.isEmpty {
            throw ConfigurationError(
                "github_client_secret and github_client_secret_file are both set: give the client secret in one place")
        }
        if !githubClientSecret.isEmpty || !githubClientSecretFile.isEmpty, githubClientID.isEmpty {
            throw ConfigurationError(
                "a GitHub client secret is set but github_client_id is empty: the web flow needs both")
        }
        guard refreshLifetime <= sessionMaxLifetime else {
            throw ConfigurationError(
                "refresh_lifetime (\(refreshLifetime)) must not exceed session_max_lifetime (\(sessionMaxLifetime))")
        }
        guard refreshReuseGrace < refreshLifetime else {
            throw ConfigurationError("refresh_reuse_grace must be shorter than refresh_lifetime")
        }
        guard jwksMaxAge <= keyPrepublication else {
            throw ConfigurationError(
                "jwks_max_age (\(jwksMaxAge)) must not exceed key_prepublication (\(keyPrepublication)): a gateway could cache the JWKS past the moment the next key starts signing")
        }
        guard keyRotationPeriod == 0 || keyRotationPeriod >= keyPrepublication else {
            throw ConfigurationError("key_rotation_period must be 0 (off) or at least key_prepublication")
        }
        var clusters: [String: String] = [:]
        for mapping in githubOrganizations {
            try NamePolicy.validateOrganizationName(mapping.organization)
            for cluster in mapping.teams.values.sorted() {
                try NamePolicy.validateOrganizationName(cluster, what: "a cluster name")
                if let other = clusters[cluster], other != mapping.organization {
                    throw ConfigurationError(
                        "github_orgs: cluster name \(cluster) is given to both \(other) and \(mapping.organization)")
                }
                clusters[cluster] = mapping.organization
            }
        }
        if !provisionerURL.isEmpty, let refusal = Self.provisionerURLRefusal(provisionerURL) {
            // Not repeated when it may hold a password.
            let shown = provisionerURL.contains("@") ? "" : ", got \"\(provisionerURL.prefix(120))\""
            throw ConfigurationError("provisioner_url \(refusal)\(shown)")
        }
        // A bad entry stops the start, naming itself, rather than trusting nobody (or everybody).
        _ = try TrustedProxies(trustedProxies)
        if let metricsHost {
            guard !metricsHost.isEmpty else { throw ConfigurationError("metrics_host must not be empty") }
            guard metricsPort != nil else {
                throw ConfigurationError("metrics_host needs metrics_port: without it /metrics stays on the public listener")
            }
        }
        if let maxConnections, let maxConnectionsPerAddress, maxConnectionsPerAddress > maxConnections {
            throw ConfigurationError(
                "max_connections_per_address (\(maxConnectionsPerAddress)) must not exceed max_connections (\(maxConnections))")
        }
        if portalInsecureCookies {
            let host = URL(string: issuer)?.host?.lowercased() ?? ""
            let unbracketed = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            let loopback = host == "localhost" || (IPAddress(unbracketed)?.isLoopback ?? false)
            guard issuer.hasPrefix("http://"), loopback else {
                throw ConfigurationError(
                    "portal_insecure_cookies is for development on loopback only: the issuer must be http:// on localhost, 127.0.0.1 or ::1, got \(issuer)")
            }
        }
        if let metricsPort, metricsPort != 0, metricsPort == port, metricsListenHost == host {
            throw ConfigurationError("metrics_port \(metricsPort) on \(metricsListenHost) is the public listener: choose another port")
        }
    }

    /// Why `url` cannot be the provisioner's address, or nil: it must be an absolute http(s) URL
    /// with a host, no user information (credentials would travel with every call and show in
    /// `broker config check`), no query and no fragment (the calls' own paths and queries are
    /// appended to its path).
    static func provisionerURLRefusal(_ url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            ["http", "https"].contains(scheme)
        else { return "must be an absolute http:// or https:// URL" }
        guard let host = components.host, !host.isEmpty else { return "must name a host" }
        guard components.user == nil, components.password == nil else { return "must not carry user information" }
        guard components.query == nil, components.fragment == nil else { return "must have no query and no fragment" }
        return nil
    }

    /// Reads `github_orgs`: a mapping from broker organization to
    /// `{github_org: NAME, admit_members: true|false, teams: {team-slug: cluster-name}}`.
    public mutating func setGitHubOrganizations(_ value: Any, source: String) throws {
        guard let mapping = value as? [String: Any] else {
            throw ConfigurationError("\(source): github_orgs must be a mapping of organization name to settings")
        }
        var result: [GitHubOrganizationMapping] = []
        for (organization, settings) in mapping.sorted(by: { $0.key < $1.key }) {
            let what = "\(source): github_orgs.\(organization)"
            guard let settings = settings as? [String: Any] else { throw ConfigurationError("\(what) must be a mapping") }
            for key in settings.keys where !["github_org", "admit_members", "teams"].contains(key) {
                throw ConfigurationError("\(what): unknown key \(key) (known: github_org, admit_members, teams)")
            }
            guard let githubOrganization = settings["github_org"] as? String, !githubOrganization.isEmpty else {
                throw ConfigurationError("\(what).github_org must name a GitHub organization")
            }
            var admitMembers = true
            if let admit = settings["admit_members"] {
                guard let flag = admit as? Bool else { throw ConfigurationError("\(what).admit_members must be true or false") }
                admitMembers = flag
            }
            var teams: [String: String] = [:]
            if let declared = settings["teams"] {
                guard let declared = declared as? [String: Any] else {
                    throw ConfigurationError("\(what).teams must map team slugs to cluster names")
                }
                for (slug, cluster) in declared {
                    guard let cluster = cluster as? String else {
                        throw ConfigurationError("\(what).teams.\(slug) must be a cluster name")
                    }
                    teams[slug.lowercased()] = cluster
                }
            }
            result.append(
                GitHubOrganizationMapping(
                    organization: organization, githubOrganization: githubOrganization, admitMembers: admitMembers,
                    teams: teams))
        }
        githubOrganizations = result
    }

    /// The OAuth app's client secret: ``githubClientSecret``, or the line
    /// ``githubClientSecretFile`` holds, read now (`broker serve` reads it at start, so that a
    /// missing file stops the start rather than the first sign-in). Empty when neither is set.
    /// - Throws: ``ConfigurationError`` naming the file and what is wrong with it, never its
    ///   contents.
    public func githubClientSecretValue() throws -> String {
        guard !githubClientSecretFile.isEmpty else { return githubClientSecret }
        return try SecretFile.readLine(githubClientSecretFile, setting: "github_client_secret_file")
    }

    /// Where the SQLite database lives.
    public var databasePath: String { (dataDirectory as NSString).appendingPathComponent("broker.sqlite3") }

    /// Where audit lines go.
    public var auditLogPath: String {
        auditLog.isEmpty ? (dataDirectory as NSString).appendingPathComponent("audit.log") : auditLog
    }
}

/// What the broker does when an audit line cannot be written.
public enum AuditFailureMode: String, Sendable, Equatable {
    /// Refuse the action (503): nothing happens that the audit trail does not record.
    case failClosed = "closed"
    /// Carry on and write an error log line.
    case failOpen = "open"
}

/// A configuration that cannot be used, with a message naming the key and the source.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// How GitHub decides the members of one broker organization.
public struct GitHubOrganizationMapping: Sendable, Equatable {
    /// The broker organization.
    public var organization: String
    /// The GitHub organization whose active members (if ``admitMembers``) are members, and whose
    /// admins are owners.
    public var githubOrganization: String
    public var admitMembers: Bool
    /// Team slug (lower case) → cluster name of this organization that the team's members may use.
    public var teams: [String: String]

    public init(organization: String, githubOrganization: String, admitMembers: Bool = true, teams: [String: String] = [:]) {
        self.organization = organization
        self.githubOrganization = githubOrganization
        self.admitMembers = admitMembers
        self.teams = teams
    }
}

extension [GitHubOrganizationMapping] {
    /// Checks the mappings against the organizations in the store: each names an existing
    /// organization, and no team cluster takes the cluster name of another organization.
    public func validate(against organizations: [Organization]) throws {
        let byName = Dictionary(uniqueKeysWithValues: organizations.map { ($0.name, $0) })
        let clusterOwners = Dictionary(uniqueKeysWithValues: organizations.map { ($0.clusterName, $0.name) })
        for mapping in self {
            guard byName[mapping.organization] != nil else {
                throw ConfigurationError(
                    "github_orgs names the unknown organization \(mapping.organization): create it with `broker orgs add \(mapping.organization)`")
            }
            for cluster in mapping.teams.values.sorted() {
                if let owner = clusterOwners[cluster], owner != mapping.organization {
                    throw ConfigurationError(
                        "github_orgs: cluster name \(cluster) of \(mapping.organization) is already the cluster of \(owner)")
                }
            }
        }
    }
}

/// Who may create an account at the portal's `/signup`.
public enum PortalSignupMode: String, Sendable, Equatable, CaseIterable {
    /// Nobody: accounts come from admins (`broker users add`, the admin API) and GitHub.
    case closed
    /// Anyone who can reach the portal, within `portal_signup_throttle_ip`; an invitation, if
    /// given, is used (an organization's grants its membership).
    case open
    /// Only someone holding an invitation (``Invitation``: `broker invites create`, an
    /// organization's owner), within the same throttle. Sign-up with GitHub stays closed: its
    /// flow carries no invitation.
    case invite
}
