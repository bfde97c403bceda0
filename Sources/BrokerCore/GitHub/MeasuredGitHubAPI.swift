/// A ``GitHubAPI`` that times every call and counts its failures (``BrokerMetrics``), then
/// answers exactly as the API it wraps. The resolver wraps whatever API it is given, so every
/// GitHub call the broker makes is measured, whichever client or fake is behind it.
///
/// ```swift
/// let api: any GitHubAPI = MeasuredGitHubAPI.wrapping(LibcurlGitHubClient(configuration: configuration))
/// let user = try await api.user(token: pat)   // observed in broker_github_request_duration_seconds{call="user"}
/// ```
public struct MeasuredGitHubAPI: GitHubAPI {
    public let base: any GitHubAPI

    /// `api` measured once: an API that is already measured is returned as it is.
    public static func wrapping(_ api: any GitHubAPI) -> any GitHubAPI {
        api is MeasuredGitHubAPI ? api : MeasuredGitHubAPI(base: api)
    }

    private init(base: any GitHubAPI) {
        self.base = base
    }

    public func user(token: String) async throws(GitHubError) -> GitHubUser {
        try await measure(.user) { () async throws(GitHubError) in try await base.user(token: token) }
    }

    public func organizationMembership(token: String, organization: String, login: String) async throws(GitHubError)
        -> GitHubOrganizationMembership?
    {
        try await measure(.organizationMembership) { () async throws(GitHubError) in
            try await base.organizationMembership(token: token, organization: organization, login: login)
        }
    }

    public func teams(token: String) async throws(GitHubError) -> [GitHubTeam] {
        try await measure(.teams) { () async throws(GitHubError) in try await base.teams(token: token) }
    }

    public func requestDeviceCode(scope: String) async throws(GitHubError) -> GitHubDeviceCode {
        try await measure(.deviceCode) { () async throws(GitHubError) in try await base.requestDeviceCode(scope: scope) }
    }

    public func pollDeviceAuthorization(deviceCode: String) async throws(GitHubError) -> GitHubDevicePoll {
        try await measure(.devicePoll) { () async throws(GitHubError) in
            try await base.pollDeviceAuthorization(deviceCode: deviceCode)
        }
    }

    public func exchangeAuthorizationCode(code: String, redirectURI: String, codeVerifier: String)
        async throws(GitHubError) -> String
    {
        try await measure(.codeExchange) { () async throws(GitHubError) in
            try await base.exchangeAuthorizationCode(code: code, redirectURI: redirectURI, codeVerifier: codeVerifier)
        }
    }

    private func measure<Value>(
        _ call: BrokerMetrics.GitHubCall, _ body: () async throws(GitHubError) -> Value
    ) async throws(GitHubError) -> Value {
        let start = ContinuousClock.now
        do {
            let value = try await body()
            BrokerMetrics.githubRequest(call, duration: ContinuousClock.now - start)
            return value
        } catch {
            BrokerMetrics.githubRequest(call, duration: ContinuousClock.now - start)
            BrokerMetrics.githubError(error)
            throw error
        }
    }
}
