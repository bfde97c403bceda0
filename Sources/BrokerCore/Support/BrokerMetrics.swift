import BrokerCrypto
import Metrics

/// Every metric the broker emits, named in one place (prefix `broker_`), with one-line
/// recording functions for the code that observes the event. The backend is whatever
/// `MetricsSystem.bootstrap` installed (Prometheus in `broker serve`, nothing in most tests).
///
/// Labels only ever take values from the closed sets below or from route templates: never a
/// username, a token, an IP address or a raw request path, so that no client can make the
/// number of time series grow.
///
/// ```swift
/// BrokerMetrics.tokenIssued(.org)
/// let bundle = try await BrokerMetrics.countingLogin(.password) { try await authenticate() }
/// BrokerMetrics.throttled(.userAndIP)
/// ```
public enum BrokerMetrics {
    /// The metric names, as Prometheus shows them.
    public enum Name {
        public static let logins = "broker_logins_total"
        public static let tokensIssued = "broker_tokens_issued_total"
        public static let refreshes = "broker_refresh_total"
        public static let refreshReuseDetected = "broker_refresh_reuse_detected_total"
        public static let throttled = "broker_throttled_total"
        public static let githubRequestDuration = "broker_github_request_duration_seconds"
        public static let githubErrors = "broker_github_errors_total"
        public static let signingKeys = "broker_signing_keys"
        public static let httpRequests = "broker_http_requests_total"
        public static let httpRequestDuration = "broker_http_request_duration_seconds"
        public static let storagePruned = "broker_storage_pruned_total"
        public static let buildInfo = "broker_build_info"
    }

    /// How a client logged in (label `method`).
    public enum LoginMethod: String, Sendable, CaseIterable {
        case password
        case githubPAT = "github_pat"
        case githubDevice = "github_device"
        /// An administrator's session login.
        case session
        /// A browser's sign-in to the portal.
        case portal
    }

    /// How a login ended (label `outcome`).
    public enum LoginOutcome: String, Sendable, CaseIterable {
        case success
        /// Wrong password, unknown user, or a token GitHub rejected.
        case failure
        /// Authenticated, but not allowed: disabled account, no membership, unknown organization, or
        /// the credential changed while it was being checked.
        case denied
        /// Refused by the brute-force throttle before the password was looked at.
        case throttled
        /// The broker or GitHub could not answer (5xx).
        case error

        /// The outcome a failed login's error stands for.
        public init(_ error: any Error) {
            guard let error = error as? BrokerError else {
                self = .error
                return
            }
            switch error.code {
            case .invalidCredentials, .invalidPassword, .invalidUsername, .githubTokenInvalid, .invalidToken, .missingToken:
                self = .failure
            case .accountDisabled, .notAMember, .unknownOrganization, .forbidden, .githubForbidden, .invalidOrganization,
                .credentialsChanged:
                self = .denied
            case .tooManyAttempts:
                self = .throttled
            default:
                self = error.code.isServerFailure ? .error : .failure
            }
        }
    }

    /// What kind of access token was signed (label `kind`).
    public enum TokenKind: String, Sendable, CaseIterable {
        /// Generation 1: one organization, with a refresh token.
        case org
        /// Generation 2: every cluster the GitHub holder may use.
        case generation2
        /// An administrator's session.
        case session
        /// Issued by RFC 8693 token exchange.
        case exchange
    }

    /// How presenting a refresh token ended (label `outcome`).
    public enum RefreshOutcome: String, Sendable, CaseIterable {
        /// A successor was issued.
        case rotated
        /// Unknown, expired, or of a revoked or expired session.
        case rejected
        /// A used token came back: its whole session has been revoked.
        case reused
        /// The account or its membership no longer admits the holder.
        case denied
        /// The broker could not answer (5xx).
        case error

        /// The outcome a failed refresh's error stands for.
        public init(_ error: any Error) {
            switch (error as? BrokerError)?.code {
            case .refreshTokenReused?: self = .reused
            case .invalidRefreshToken?, .sessionExpired?, .invalidRequest?: self = .rejected
            case .accountDisabled?, .notAMember?, .unknownOrganization?, .forbidden?: self = .denied
            case let code?: self = code.isServerFailure ? .error : .rejected
            case nil: self = .error
            }
        }
    }

    /// Which GitHub endpoint was called (label `call`).
    public enum GitHubCall: String, Sendable, CaseIterable {
        case user
        case organizationMembership = "org_membership"
        case teams
        case deviceCode = "device_code"
        case devicePoll = "device_poll"
        /// The web flow's `POST /login/oauth/access_token` with an authorization code.
        case codeExchange = "code_exchange"
    }

    // MARK: Start-up

    /// The `scope` labels of ``Name/throttled``: the login throttle's, GitHub logins', renewals'.
    static let throttleScopes = ThrottleScope.allCases.map(\.rawValue) + ["github_ip", "signup_ip", "session"]
    /// The `kind` labels of ``Name/storagePruned``.
    static let prunedKinds = ["refresh_token", "session", "revoked_access_token", "invitation"]

    /// Creates every series whose labels take only known values, at zero, so that a scrape shows
    /// them before their first event: `increase(...) > 0` and `rate(...)` see the first event
    /// only if the series existed before it. Call once, right after the metrics system is
    /// bootstrapped; creating a series again is harmless. The HTTP series are labelled by the
    /// routes and statuses served, and appear with their first request. The connection series
    /// are ``ConnectionMetrics``'s.
    public static func registerEverySeries() {
        for method in LoginMethod.allCases {
            for outcome in LoginOutcome.allCases {
                _ = Counter(label: Name.logins, dimensions: [("method", method.rawValue), ("outcome", outcome.rawValue)])
            }
        }
        for kind in TokenKind.allCases { _ = Counter(label: Name.tokensIssued, dimensions: [("kind", kind.rawValue)]) }
        for outcome in RefreshOutcome.allCases { _ = Counter(label: Name.refreshes, dimensions: [("outcome", outcome.rawValue)]) }
        _ = Counter(label: Name.refreshReuseDetected)
        for scope in throttleScopes { _ = Counter(label: Name.throttled, dimensions: [("scope", scope)]) }
        for kind in prunedKinds { _ = Counter(label: Name.storagePruned, dimensions: [("kind", kind)]) }
        for call in GitHubCall.allCases {
            _ = CoreMetrics.Timer(label: Name.githubRequestDuration, dimensions: [("call", call.rawValue)])
        }
        for kind in GitHubError.metricKinds { _ = Counter(label: Name.githubErrors, dimensions: [("kind", kind)]) }
        // `broker_signing_keys` is set, every combination, whenever a key ring is loaded.
        // Always 1: the information is the label, which a query joins onto other series.
        Gauge(label: Name.buildInfo, dimensions: [("version", BrokerVersion.current)]).record(1)
    }

    // MARK: Logins and tokens

    public static func login(_ method: LoginMethod, _ outcome: LoginOutcome) {
        Counter(label: Name.logins, dimensions: [("method", method.rawValue), ("outcome", outcome.rawValue)]).increment()
    }

    /// Runs a login and counts it as a success, or by the error it throws.
    public static func countingLogin<Value>(_ method: LoginMethod, _ body: () async throws -> Value) async throws -> Value {
        do {
            let value = try await body()
            login(method, .success)
            return value
        } catch {
            login(method, LoginOutcome(error))
            throw error
        }
    }

    public static func tokenIssued(_ kind: TokenKind) {
        Counter(label: Name.tokensIssued, dimensions: [("kind", kind.rawValue)]).increment()
    }

    // MARK: Refresh tokens

    public static func refresh(_ outcome: RefreshOutcome) {
        Counter(label: Name.refreshes, dimensions: [("outcome", outcome.rawValue)]).increment()
    }

    /// Runs a refresh and counts it as rotated, or by the error it throws.
    public static func countingRefresh<Value>(_ body: () async throws -> Value) async throws -> Value {
        do {
            let value = try await body()
            refresh(.rotated)
            return value
        } catch {
            refresh(RefreshOutcome(error))
            throw error
        }
    }

    /// A used refresh token was presented again (a stolen token, or a client bug): its session
    /// was revoked. Worth an alert on any increase.
    public static func refreshReuseDetected() {
        Counter(label: Name.refreshReuseDetected).increment()
    }

    // MARK: Throttling

    /// The scopes are ``ThrottleScope``'s: user_ip, user, ip.
    public static func throttled(_ scope: ThrottleScope) {
        Counter(label: Name.throttled, dimensions: [("scope", scope.rawValue)]).increment()
    }

    /// An attempt refused by an ``AddressThrottle`` (scope `github_ip` or `signup_ip`).
    public static func throttled(scope: String) {
        Counter(label: Name.throttled, dimensions: [("scope", scope)]).increment()
    }

    /// Rows ``StoragePruner`` deleted, by kind: `refresh_token`, `session`,
    /// `revoked_access_token`, `invitation`.
    public static func pruned(_ rows: PrunedRows) {
        let counts = [rows.refreshTokens, rows.sessions, rows.revokedAccessTokens, rows.invitations]
        for (kind, count) in zip(prunedKinds, counts) where count > 0 {
            Counter(label: Name.storagePruned, dimensions: [("kind", kind)]).increment(by: count)
        }
    }

    /// A renewal refused by ``SessionRefreshThrottle`` (scope `session`).
    public static func throttledRefresh() {
        Counter(label: Name.throttled, dimensions: [("scope", "session")]).increment()
    }

    // MARK: GitHub

    public static func githubRequest(_ call: GitHubCall, duration: Duration) {
        CoreMetrics.Timer(label: Name.githubRequestDuration, dimensions: [("call", call.rawValue)])
            .recordNanoseconds(duration.nanoseconds)
    }

    public static func githubError(_ error: GitHubError) {
        Counter(label: Name.githubErrors, dimensions: [("kind", error.metricKind)]).increment()
    }

    // MARK: Signing keys

    /// Sets the number of keys per state and algorithm; every combination is set, so a state
    /// that empties reads 0 instead of keeping its last count.
    public static func signingKeys(_ snapshot: KeyRingSnapshot) {
        for algorithm in JWSAlgorithm.allCases {
            for state in KeyState.allCases {
                let count = snapshot.keys.count { $0.metadata.algorithm == algorithm && $0.metadata.state == state }
                Gauge(label: Name.signingKeys, dimensions: [("state", state.rawValue), ("alg", algorithm.rawValue)])
                    .record(count)
            }
        }
    }

    // MARK: HTTP

    /// The route label of a request no route matched: never its path, which the client chooses.
    public static let unmatchedRoute = "unmatched"

    /// One answered request. `route` must be a route template (or ``unmatchedRoute``).
    public static func httpRequest(route: String, method: String, status: Int, duration: Duration) {
        Counter(
            label: Name.httpRequests, dimensions: [("route", route), ("method", method), ("status", String(status))]
        ).increment()
        CoreMetrics.Timer(label: Name.httpRequestDuration, dimensions: [("route", route), ("method", method)])
            .recordNanoseconds(duration.nanoseconds)
    }
}

extension GitHubError {
    /// Every value of the `kind` label of `broker_github_errors_total`.
    static let metricKinds = [
        GitHubError.unauthorized, .forbidden(""), .rateLimited(retryAfter: 0), .unavailable(""), .malformedResponse(""),
        .authorizationCodeRejected(""),
    ].map(\.metricKind)

    /// The `kind` label of `broker_github_errors_total`.
    var metricKind: String {
        switch self {
        case .unauthorized: "unauthorized"
        case .forbidden: "forbidden"
        case .rateLimited: "rate_limited"
        case .unavailable: "unavailable"
        case .malformedResponse: "malformed_response"
        case .authorizationCodeRejected: "code_rejected"
        }
    }
}

extension Duration {
    /// The whole duration in nanoseconds, saturating instead of trapping on absurd values.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return scaled.addingReportingOverflow(attoseconds / 1_000_000_000).overflow ? .max : scaled + attoseconds / 1_000_000_000
    }
}
