import BrokerCore
import BrokerCrypto
import Foundation

/// `GitHubAPI` over libcurl: GitHub's REST API (github.com or GitHub Enterprise Server), the
/// OAuth device flow and the web flow's code exchange.
///
/// Requests run on a thread the client owns (see `CurlLoop`), so callers on an event loop or
/// in Swift's cooperative pool only suspend. Connections are kept alive and reused. A token
/// that GitHub rate-limits is not sent again before the reset GitHub announced.
///
/// ```swift
/// let github = try LibcurlGitHubClient(configuration: .init(clientID: "Iv1.0123456789abcdef"))
/// let user = try await github.user(token: pat)
/// if let membership = try await github.organizationMembership(token: pat, organization: "acme", login: user.login),
///     membership.state == "active" {
///     print("\(user.login) is \(membership.role) of acme")
/// }
/// ```
public final class LibcurlGitHubClient: GitHubAPI {
    /// Where GitHub is and how long to wait for it.
    ///
    /// ```swift
    /// var configuration = LibcurlGitHubClient.Configuration(
    ///     apiURL: "https://github.example.com/api/v3", webURL: "https://github.example.com")
    /// configuration.totalTimeout = .seconds(5)
    /// ```
    public struct Configuration: Sendable {
        /// REST API base: `https://api.github.com`, or `https://HOST/api/v3` for Enterprise
        /// Server. Plain `http` only for loopback hosts.
        public var apiURL: String
        /// Web base, for the device and web flows: `https://github.com` or `https://HOST`.
        public var webURL: String
        /// The OAuth app's client id, sent in device-flow and web-flow calls (it is not a secret).
        public var clientID: String
        /// The OAuth app's client secret, sent only in the web flow's code exchange; empty: no
        /// web flow. Never logged, never in an error: this configuration's description and
        /// mirror show it masked.
        public var clientSecret: String
        /// Time allowed to establish a connection (TCP and TLS).
        public var connectTimeout: Duration
        /// Time allowed for a whole call; for `teams`, for all its pages together.
        public var totalTimeout: Duration
        public var userAgent: String
        /// Sent as `X-GitHub-Api-Version`.
        public var apiVersion: String
        /// Larger response bodies are refused (`malformedResponse`) instead of buffered.
        public var maximumResponseBytes: Int
        /// `teams` fails rather than follow more `Link: rel="next"` pages than this.
        public var maximumPages: Int
        /// Size of the keep-alive connection cache.
        public var maximumConnections: Int
        /// An explicit proxy (`http://proxy:3128`); nil means none, whatever the environment's
        /// `https_proxy` says, so that the path tokens take is set by configuration alone.
        public var proxy: String?

        public init(
            apiURL: String = "https://api.github.com",
            webURL: String = "https://github.com",
            clientID: String = "",
            clientSecret: String = "",
            connectTimeout: Duration = .seconds(3),
            totalTimeout: Duration = .seconds(10),
            userAgent: String = "broker",
            apiVersion: String = "2022-11-28",
            maximumResponseBytes: Int = 1 << 20,
            maximumPages: Int = 50,
            maximumConnections: Int = 16,
            proxy: String? = nil
        ) {
            self.apiURL = apiURL
            self.webURL = webURL
            self.clientID = clientID
            self.clientSecret = clientSecret
            self.connectTimeout = connectTimeout
            self.totalTimeout = totalTimeout
            self.userAgent = userAgent
            self.apiVersion = apiVersion
            self.maximumResponseBytes = maximumResponseBytes
            self.maximumPages = maximumPages
            self.maximumConnections = maximumConnections
            self.proxy = proxy
        }
    }

    public let configuration: Configuration
    private let api: BaseURL
    private let web: BaseURL
    private let loop: CurlLoop
    private let gate: RateLimitGate
    private let clock: any WallClock

    /// GitHub's reset is at most an hour away; a longer wait is a bogus header, not a reason
    /// to shut a user out for days.
    private static let maximumBlockSeconds = 3600

    /// - Parameter clock: the time against which `X-RateLimit-Reset` and blocked tokens are
    ///   judged (inject a `ManualWallClock` in tests).
    /// - Throws: `GitHubClientConfigurationError` for an invalid or non-loopback `http` base
    ///   URL, a header value with control characters, or a non-positive limit.
    public init(configuration: Configuration = Configuration(), clock: any WallClock = SystemWallClock())
        throws(GitHubClientConfigurationError)
    {
        api = try BaseURL(configuration.apiURL, name: "apiURL")
        web = try BaseURL(configuration.webURL, name: "webURL")
        for (name, value) in [("userAgent", configuration.userAgent), ("apiVersion", configuration.apiVersion)] {
            guard Self.isHeaderSafe(value) else {
                throw GitHubClientConfigurationError("\(name) must be printable ASCII without line breaks")
            }
        }
        guard configuration.connectTimeout > .zero, configuration.totalTimeout > .zero,
            configuration.maximumResponseBytes > 0, configuration.maximumPages > 0, configuration.maximumConnections > 0
        else { throw GitHubClientConfigurationError("timeouts and limits must be positive") }
        do {
            loop = try CurlLoop(
                maximumBodyBytes: configuration.maximumResponseBytes,
                maximumConnections: configuration.maximumConnections,
                proxy: configuration.proxy)
        } catch {
            throw GitHubClientConfigurationError("libcurl could not start: \(error)")
        }
        self.configuration = configuration
        self.gate = RateLimitGate(clock: clock)
        self.clock = clock
    }

    deinit {
        loop.shutdown()
    }

    // MARK: - REST API

    public func user(token: String) async throws(GitHubError) -> GitHubUser {
        let deadline = ContinuousClock.now + configuration.totalTimeout
        let response = try await get(api.appending("user"), token: token, deadline: deadline)
        let json = try decode(response)
        guard let login = json["login"]?.string, !login.isEmpty, let id = json["id"]?.int64 else {
            throw .malformedResponse("user without login or id")
        }
        return GitHubUser(login: login, id: id)
    }

    public func organizationMembership(token: String, organization: String, login: String) async throws(GitHubError)
        -> GitHubOrganizationMembership?
    {
        // libcurl would collapse a `.` or `..` segment (percent-encoding leaves dots alone),
        // sending the token to another endpoint; no GitHub name is one.
        for name in [organization, login] where name.isEmpty || name == "." || name == ".." {
            return nil
        }
        let deadline = ContinuousClock.now + configuration.totalTimeout
        let url = api.appending("orgs", organization, "memberships", login)
        let response = try await get(url, token: token, deadline: deadline)
        if response.status == 404 { return nil }
        let json = try decode(response)
        guard let state = json["state"]?.string, let role = json["role"]?.string else {
            throw .malformedResponse("membership without state or role")
        }
        return GitHubOrganizationMembership(state: state, role: role)
    }

    public func teams(token: String) async throws(GitHubError) -> [GitHubTeam] {
        let deadline = ContinuousClock.now + configuration.totalTimeout
        var url = api.appending("user", "teams", query: "per_page=100")
        var visited: Set<String> = [url]
        var teams: [GitHubTeam] = []
        while true {
            let response = try await get(url, token: token, deadline: deadline)
            guard let page = try decode(response).array else { throw .malformedResponse("teams page is not an array") }
            for team in page {
                guard let slug = team["slug"]?.string, let organization = team["organization"]?["login"]?.string else {
                    throw .malformedResponse("team without slug or organization login")
                }
                teams.append(GitHubTeam(slug: slug, organization: organization))
            }
            guard let next = LinkHeader.target(rel: "next", in: response.headers.values("link")) else { return teams }
            // The token goes with every page: only to the API we were configured with.
            guard api.contains(next) else { throw .malformedResponse("pagination link outside the configured API base") }
            guard visited.insert(next).inserted else { throw .malformedResponse("pagination links form a loop") }
            guard visited.count <= configuration.maximumPages else {
                throw .malformedResponse("more than \(configuration.maximumPages) pages of teams")
            }
            url = next
        }
    }

    // MARK: - Device flow

    public func requestDeviceCode(scope: String) async throws(GitHubError) -> GitHubDeviceCode {
        let deadline = ContinuousClock.now + configuration.totalTimeout
        let response = try await postForm(
            web.appending("login", "device", "code"),
            fields: [("client_id", configuration.clientID), ("scope", scope)], deadline: deadline)
        let json = try decodeOAuth(response)
        if let error = json["error"]?.string {
            // A refused device-code request is a configuration problem (unknown client id,
            // device flow disabled for the app): nothing the user can fix by retrying.
            throw .unavailable("GitHub refused the device code request: \(Self.errorCode(error))")
        }
        guard let deviceCode = json["device_code"]?.string, let userCode = json["user_code"]?.string,
            let verificationURI = json["verification_uri"]?.string,
            let expiresIn = json["expires_in"]?.int64, let interval = json["interval"]?.int64
        else { throw .malformedResponse("device code response without its required fields") }
        return GitHubDeviceCode(
            deviceCode: deviceCode, userCode: userCode, verificationURI: verificationURI,
            verificationURIComplete: json["verification_uri_complete"]?.string,
            expiresIn: Int(clamping: expiresIn), interval: Int(clamping: interval))
    }

    public func pollDeviceAuthorization(deviceCode: String) async throws(GitHubError) -> GitHubDevicePoll {
        let deadline = ContinuousClock.now + configuration.totalTimeout
        let response = try await postForm(
            web.appending("login", "oauth", "access_token"),
            fields: [
                ("client_id", configuration.clientID), ("device_code", deviceCode),
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ],
            deadline: deadline)
        let json = try decodeOAuth(response)
        if let token = json["access_token"]?.string, !token.isEmpty { return .authorized(accessToken: token) }
        guard let error = json["error"]?.string else {
            throw .malformedResponse("device poll response with neither access_token nor error")
        }
        let interval = json["interval"]?.int64.map { Int(clamping: $0) }
        switch error {
        case "authorization_pending": return .pending(interval: interval ?? 5)
        // RFC 8628 §3.5: on slow_down the interval grows by 5 seconds if the server names none.
        case "slow_down": return .slowDown(interval: interval ?? 10)
        case "expired_token": return .expired
        case "access_denied": return .denied
        default: return .failed(error: Self.errorCode(error))
        }
    }

    // MARK: - Web flow

    public func exchangeAuthorizationCode(code: String, redirectURI: String, codeVerifier: String)
        async throws(GitHubError) -> String
    {
        guard !configuration.clientSecret.isEmpty else {
            throw .unavailable("the web flow needs the OAuth app's client secret (github_client_secret), which is not set")
        }
        // A code or verifier no GitHub issues (empty, huge) is refused without a call.
        guard !code.isEmpty, code.utf8.count <= 1024, codeVerifier.utf8.count <= 1024 else {
            throw .authorizationCodeRejected("bad_verification_code")
        }
        let deadline = ContinuousClock.now + configuration.totalTimeout
        let response = try await postForm(
            web.appending("login", "oauth", "access_token"),
            fields: [
                ("client_id", configuration.clientID), ("client_secret", configuration.clientSecret), ("code", code),
                ("redirect_uri", redirectURI), ("code_verifier", codeVerifier),
            ],
            deadline: deadline)
        let json = try decodeOAuth(response)
        if let token = json["access_token"]?.string, !token.isEmpty { return token }
        guard let error = json["error"]?.string else {
            throw .malformedResponse("code exchange response with neither access_token nor error")
        }
        // Only GitHub's error code is kept: its error_description is prose that could, some day,
        // quote what was sent.
        let oauthError = Self.errorCode(error)
        switch oauthError {
        // GitHub's name for a code that is unknown, expired, used or not matching the verifier;
        // RFC 6749's (section 5.2) for the same.
        case "bad_verification_code", "invalid_grant": throw .authorizationCodeRejected(oauthError)
        // incorrect_client_credentials, redirect_uri_mismatch, ...: the broker's settings, which
        // no user can fix by signing in again.
        default: throw .unavailable("GitHub refused the authorization code exchange: \(oauthError)")
        }
    }

    // MARK: - Requests

    private func get(_ url: String, token: String, deadline: ContinuousClock.Instant) async throws(GitHubError)
        -> CurlResponse
    {
        // GitHub tokens are short runs of letters, digits and `_`; anything with spaces or
        // control characters could split the Authorization header, so it never leaves here.
        guard !token.isEmpty, token.utf8.count <= 1024, Self.isHeaderSafe(token), !token.contains(" ") else {
            throw .unauthorized
        }
        let key = RateLimitGate.key(for: token)
        try gate.check(key)
        let response = try await send(
            CurlRequest(
                method: .get, url: url,
                headers: [
                    "Accept: application/vnd.github+json",
                    "X-GitHub-Api-Version: \(configuration.apiVersion)",
                    "User-Agent: \(configuration.userAgent)",
                    "Authorization: Bearer \(token)",
                ],
                connectTimeoutMilliseconds: 0, totalTimeoutMilliseconds: 0),
            deadline: deadline)
        if let seconds = rateLimitSeconds(response) {
            gate.block(key, seconds: seconds)
            throw .rateLimited(retryAfter: seconds)
        }
        switch response.status {
        case 200..<300, 404: return response
        default: throw Self.failure(status: response.status, response: response)
        }
    }

    private func postForm(_ url: String, fields: [(String, String)], deadline: ContinuousClock.Instant)
        async throws(GitHubError) -> CurlResponse
    {
        let response = try await send(
            CurlRequest(
                method: .post(body: FormEncoding.encode(fields)), url: url,
                headers: [
                    // GitHub's OAuth endpoints answer form-encoded unless asked for JSON.
                    "Accept: application/json",
                    "Content-Type: application/x-www-form-urlencoded",
                    "User-Agent: \(configuration.userAgent)",
                ],
                connectTimeoutMilliseconds: 0, totalTimeoutMilliseconds: 0),
            deadline: deadline)
        if let seconds = rateLimitSeconds(response) { throw .rateLimited(retryAfter: seconds) }
        return response
    }

    /// Sends with the time left before `deadline`, mapping transport failures.
    private func send(_ request: CurlRequest, deadline: ContinuousClock.Instant) async throws(GitHubError)
        -> CurlResponse
    {
        let left = ContinuousClock.now.duration(to: deadline)
        guard left > .milliseconds(1) else { throw .unavailable("timed out") }
        var request = request
        request.totalTimeoutMilliseconds = Self.milliseconds(left)
        request.connectTimeoutMilliseconds = Self.milliseconds(min(left, configuration.connectTimeout))
        switch await loop.perform(request) {
        case .success(let response):
            return response
        case .failure(.timedOut):
            throw .unavailable("timed out")
        case .failure(.cancelled):
            throw .unavailable("request cancelled")
        case .failure(.bodyTooLarge):
            throw .malformedResponse("response larger than \(configuration.maximumResponseBytes) bytes")
        case .failure(.shutDown):
            throw .unavailable("client shut down")
        case .failure(.transport(let why)):
            throw .unavailable(why)
        }
    }

    // MARK: - Responses

    /// Seconds to wait if `response` is a rate-limit answer: 429, or 403 with
    /// `X-RateLimit-Remaining: 0` (primary limit) or with `Retry-After` (secondary limit).
    private func rateLimitSeconds(_ response: CurlResponse) -> Int? {
        let headers = response.headers
        let limited =
            response.status == 429
            || response.status == 403 && (headers["x-ratelimit-remaining"] == "0" || headers["retry-after"] != nil)
        guard limited else { return nil }
        let seconds: Int
        if let retryAfter = headers["retry-after"].flatMap({ Int($0) }), retryAfter >= 0 {
            seconds = max(1, retryAfter)
        } else if let reset = headers["x-ratelimit-reset"].flatMap({ Int64($0) }) {
            seconds = RateLimitGate.seconds(from: clock.now(), to: Date(timeIntervalSince1970: TimeInterval(reset)))
        } else {
            seconds = 60  // GitHub's advice when it names no time: wait at least a minute
        }
        return min(seconds, Self.maximumBlockSeconds)
    }

    /// The JSON of a 2xx REST response.
    private func decode(_ response: CurlResponse) throws(GitHubError) -> JSONValue {
        guard (200..<300).contains(response.status) else { throw Self.failure(status: response.status, response: response) }
        return try Self.parse(response.body)
    }

    /// The JSON of an OAuth endpoint's answer, which carries errors in the body (GitHub uses
    /// 200 for them; RFC 6749 servers use 400 or 401).
    private func decodeOAuth(_ response: CurlResponse) throws(GitHubError) -> JSONValue {
        switch response.status {
        case 200..<300, 400, 401:
            let json = try Self.parse(response.body)
            guard json.object != nil else { throw .malformedResponse("OAuth response is not a JSON object") }
            return json
        default:
            throw Self.failure(status: response.status, response: response)
        }
    }

    private static func parse(_ body: [UInt8]) throws(GitHubError) -> JSONValue {
        do {
            return try JSONParser.parse(body, maxDepth: 32)
        } catch {
            // JSONParseError describes the position and the problem, never the text.
            throw .malformedResponse("\(error)")
        }
    }

    private static func failure(status: Int, response: CurlResponse) -> GitHubError {
        switch status {
        case 401: return .unauthorized
        case 403:
            let message = (try? JSONParser.parse(response.body))?["message"]?.string
            return .forbidden(message.map(sanitized) ?? "forbidden")
        case 500..<600: return .unavailable("HTTP \(status)")
        default: return .malformedResponse("unexpected HTTP status \(status)")
        }
    }

    // MARK: - Helpers

    private static func isHeaderSafe(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    /// GitHub's message, cut to a line of printable text before it reaches logs and clients.
    private static func sanitized(_ message: String) -> String {
        String(String.UnicodeScalarView(message.unicodeScalars.prefix(200).filter { $0.value >= 0x20 && $0.value != 0x7F }))
    }

    /// An OAuth error code, reduced to the characters RFC 6749 allows in one.
    private static func errorCode(_ code: String) -> String {
        String(code.unicodeScalars.prefix(64).filter { $0.isASCII && ($0.properties.isAlphabetic || $0 == "_" || ("0"..."9").contains($0)) }
            .map(Character.init))
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }
}

extension LibcurlGitHubClient.Configuration: CustomReflectable {
    /// Every setting, the client secret masked: `print`, string interpolation and `dump` all
    /// read a value through its mirror, so a configuration that reaches a log line or an error
    /// message carries no secret.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "apiURL": apiURL, "webURL": webURL, "clientID": clientID,
                "clientSecret": clientSecret.isEmpty ? "" : "********",
                "connectTimeout": connectTimeout, "totalTimeout": totalTimeout, "userAgent": userAgent,
                "apiVersion": apiVersion, "maximumResponseBytes": maximumResponseBytes, "maximumPages": maximumPages,
                "maximumConnections": maximumConnections, "proxy": proxy as Any,
            ],
            displayStyle: .struct)
    }
}
