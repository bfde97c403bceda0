import BrokerSync
import Foundation
import Hummingbird
import Logging
import NIOCore

/// A fake GitHub for tests: the REST calls, device flow and web flow the broker uses, on loopback,
/// with GitHub's shapes (pagination `Link` headers, rate-limit headers, OAuth error bodies)
/// and faults to inject (delays, 5xx, malformed bodies, dropped connections).
///
/// ```swift
/// let github = try await FakeGitHub.start()
/// github.addUser(login: "alice", token: "ghp_alice", organizations: ["acme": .admin],
///                teams: [(organization: "acme", slug: "cluster-a")])
/// let client = try LibcurlGitHubClient(configuration: .init(
///     apiURL: github.apiURL, webURL: github.webURL, clientID: github.clientID))
/// github.inject(.status(502), on: .user, times: 1)
/// // ... exercise the client, then:
/// XCTAssertEqual(github.requestCount(on: .user), 1)
/// await github.stop()
/// ```
public final class FakeGitHub: Sendable {
    /// The port the fake listens on (127.0.0.1).
    public let port: Int
    /// `http://127.0.0.1:PORT`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// The REST API base: `baseURL` plus the path prefix given to `start` (e.g. `/api/v3`).
    public var apiURL: String { baseURL + apiPathPrefix }
    /// The web base, for the device and web flows.
    public var webURL: String { baseURL }
    /// The OAuth client id the device-flow and web-flow endpoints accept.
    public let clientID: String
    /// The OAuth client secret the web flow's code exchange accepts.
    public let clientSecret: String

    let apiPathPrefix: String
    let state: Locked<FakeGitHubState>
    let now: @Sendable () -> Date
    let maximumPerPage: Int
    let deviceInterval: Int
    let deviceExpiresIn: Int
    private let server: Locked<Task<Void, Never>?>

    /// Starts a fake on 127.0.0.1 with a free port.
    ///
    /// - Parameters:
    ///   - apiPathPrefix: serve the REST API under this path, as GitHub Enterprise Server does
    ///     (`/api/v3`); device-flow endpoints stay at the root.
    ///   - maximumPerPage: the largest `per_page` honoured for teams (GitHub: 100); set it low
    ///     to get several pages out of a few teams.
    ///   - deviceInterval: the polling interval, in seconds, handed out with device codes.
    ///   - deviceExpiresIn: device code lifetime in seconds.
    ///   - clientSecret: the secret the web flow's code exchange requires with `clientID`.
    ///   - now: the fake's clock, for rate-limit resets and device-flow and web-flow timing.
    public static func start(
        apiPathPrefix: String = "",
        clientID: String = "fake-client-id",
        clientSecret: String = "fake-client-secret",
        maximumPerPage: Int = 100,
        deviceInterval: Int = 5,
        deviceExpiresIn: Int = 900,
        now: @escaping @Sendable () -> Date = { Date() }
    ) async throws -> FakeGitHub {
        let box = RouterBox()
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "FakeGitHub")
        logger.logLevel = .critical
        let router = Router(context: FakeGitHubContext.self)
        box.register(on: router, apiPathPrefix: apiPathPrefix)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                portContinuation.yield(channel.localAddress?.port ?? 0)
                portContinuation.finish()
            },
            logger: logger)
        let task = Task {
            try? await app.run()
            portContinuation.finish()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            await task.value
            throw FakeGitHubStartError()
        }
        let fake = FakeGitHub(
            port: port, clientID: clientID, clientSecret: clientSecret, apiPathPrefix: apiPathPrefix, now: now,
            maximumPerPage: maximumPerPage, deviceInterval: deviceInterval, deviceExpiresIn: deviceExpiresIn,
            server: task)
        box.fake.withLock { $0 = fake }
        return fake
    }

    private init(
        port: Int, clientID: String, clientSecret: String, apiPathPrefix: String,
        now: @escaping @Sendable () -> Date, maximumPerPage: Int, deviceInterval: Int, deviceExpiresIn: Int,
        server: Task<Void, Never>
    ) {
        self.port = port
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.apiPathPrefix = apiPathPrefix
        self.state = Locked(FakeGitHubState())
        self.now = now
        self.maximumPerPage = maximumPerPage
        self.deviceInterval = deviceInterval
        self.deviceExpiresIn = deviceExpiresIn
        self.server = Locked(server)
    }

    /// Stops the server; requests in flight are abandoned.
    public func stop() async {
        guard let task = server.withLock({ task in defer { task = nil }; return task }) else { return }
        task.cancel()
        await task.value
    }

    // MARK: - Users and tokens

    /// Adds a GitHub user reachable with `token` (and any later `addToken`). Each user gets a
    /// numeric id of their own (`id`, or the next free one), kept across renames.
    ///
    /// - Parameters:
    ///   - scopes: the token's OAuth scopes; without `read:org`, memberships and teams answer 403.
    ///   - organizations: the user's organization memberships.
    ///   - teams: the teams the user belongs to, in any organization.
    public func addUser(
        login: String, id: Int64? = nil, token: String, scopes: Set<String> = ["read:org"],
        organizations: [String: Membership] = [:], teams: [(organization: String, slug: String)] = []
    ) {
        state.withLock { state in
            let userID = id ?? state.nextUserID
            state.nextUserID = max(state.nextUserID, userID) + 1
            state.users[login] = .init(login: login, id: userID, organizations: organizations, teams: teams)
            state.addToken(token, login: login, scopes: scopes)
        }
    }

    /// The user renames their login, as GitHub allows: the numeric id and every token stay
    /// theirs, and the old login is free for someone else (`addUser(login: old, ...)`).
    ///
    /// ```swift
    /// github.renameUser("alice", to: "alice-renamed")
    /// github.addUser(login: "alice", token: "ghp_mallory")   // a new user id takes the old login
    /// ```
    public func renameUser(_ login: String, to newLogin: String) {
        state.withLock { state in
            guard var user = state.users.removeValue(forKey: login) else { return }
            user.login = newLogin
            state.users[newLogin] = user
            for (token, grant) in state.tokens where grant.login == login { state.tokens[token]?.login = newLogin }
        }
    }

    /// GitHub's numeric user id of `login`, stable across renames.
    public func userID(of login: String) -> Int64? {
        state.withLock { $0.users[login]?.id }
    }

    /// Another token for an existing user.
    public func addToken(_ token: String, for login: String, scopes: Set<String> = ["read:org"]) {
        state.withLock { $0.addToken(token, login: login, scopes: scopes) }
    }

    /// The token now gets 401 `Bad credentials`, as a revoked PAT does.
    public func revoke(token: String) {
        state.withLock { $0.tokens[token]?.revoked = true }
    }

    /// Sets (or, with nil, removes) a user's membership of `organization`.
    public func setMembership(login: String, organization: String, _ membership: Membership?) {
        state.withLock { $0.users[login]?.organizations[organization] = membership }
    }

    /// Replaces a user's teams.
    public func setTeams(login: String, _ teams: [(organization: String, slug: String)]) {
        state.withLock { $0.users[login]?.teams = teams }
    }

    // MARK: - Rate limits

    /// Every API call with `token` now gets `answer`, until `restoreRateLimit`.
    public func exhaustRateLimit(token: String, answer: RateLimitAnswer) {
        state.withLock { $0.tokens[token]?.exhausted = answer }
    }

    public func restoreRateLimit(token: String) {
        state.withLock { $0.tokens[token]?.exhausted = nil }
    }

    // MARK: - Faults

    /// Applies `fault` to the next `times` requests on `route` (all of them if nil).
    /// Several faults on one route combine: a delay, then the others.
    public func inject(_ fault: Fault, on route: Route, times: Int? = nil) {
        state.withLock { $0.faults[route, default: []].append(.init(fault: fault, remaining: times)) }
    }

    /// Removes the faults of `route`, or of every route.
    public func clearFaults(on route: Route? = nil) {
        state.withLock { state in
            if let route { state.faults[route] = nil } else { state.faults.removeAll() }
        }
    }

    // MARK: - Device flow

    /// The user approves the device code shown as `userCode`; the next poll gets `token`.
    public func approveDevice(userCode: String, token: String) {
        state.withLock { state in
            guard let key = state.devices.first(where: { $0.value.userCode == userCode })?.key else { return }
            state.devices[key]?.status = .approved(token: token)
        }
    }

    /// `login` approves the device code shown as `userCode` at the fake's `/login/device` page,
    /// with one of their tokens; false for an unknown code or user.
    @discardableResult
    public func approveDevice(userCode: String, login: String) -> Bool {
        state.withLock { state in
            guard let key = state.devices.first(where: { $0.value.userCode == userCode.uppercased() })?.key,
                let token = state.firstUsableToken(of: login)
            else { return false }
            state.devices[key]?.status = .approved(token: token)
            return true
        }
    }

    /// The user denies the device code shown as `userCode`.
    public func denyDevice(userCode: String) {
        state.withLock { state in
            guard let key = state.devices.first(where: { $0.value.userCode == userCode })?.key else { return }
            state.devices[key]?.status = .denied
        }
    }

    // MARK: - Web flow

    /// How long an authorization code may wait for its exchange: GitHub's ten minutes.
    public static let authorizationCodeLifetime: TimeInterval = 600

    /// `login` approves the web flow at the fake's authorize page, as the form there does: a
    /// one-time code for their first unrevoked token, good for one exchange with `redirectURI`
    /// and the verifier whose S256 challenge is `codeChallenge`. Nil for an unknown user or one
    /// without a token.
    ///
    /// ```swift
    /// let code = try XCTUnwrap(github.authorize(login: "alice", redirectURI: callback, codeChallenge: challenge))
    /// let token = try await client.exchangeAuthorizationCode(code: code, redirectURI: callback, codeVerifier: verifier)
    /// ```
    public func authorize(login: String, redirectURI: String, codeChallenge: String) -> String? {
        let issuedAt = now()
        return state.withLock { state in
            guard let token = state.firstUsableToken(of: login) else { return nil }
            var generator = SystemRandomNumberGenerator()
            let code = (0..<10).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
            state.webAuthorizations[code] = .init(
                token: token, redirectURI: redirectURI, codeChallenge: codeChallenge, issuedAt: issuedAt)
            return code
        }
    }

    // MARK: - Observations

    /// The requests received, oldest first, on `route` or on every route.
    public func requests(on route: Route? = nil) -> [RecordedRequest] {
        state.withLock { state in state.requests.filter { route == nil || $0.route == route } }
    }

    /// How many requests arrived on `route` (or any), with `token` (or any).
    public func requestCount(on route: Route? = nil, token: String? = nil) -> Int {
        requests(on: route).filter { token == nil || $0.token == token }.count
    }
}

/// The fake could not bind its port.
///
/// ```swift
/// do { _ = try await FakeGitHub.start() } catch let error as FakeGitHubStartError { XCTFail("\(error)") }
/// ```
public struct FakeGitHubStartError: Error, CustomStringConvertible {
    public var description: String { "the fake GitHub server did not start" }
}

/// Gives the routes, which are built before the server starts, the fake they serve.
final class RouterBox: Sendable {
    let fake = Locked<FakeGitHub?>(nil)
}

/// Hummingbird's basic context plus the connection, which the reset and close faults need.
struct FakeGitHubContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
