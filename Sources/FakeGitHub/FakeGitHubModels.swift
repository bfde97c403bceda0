import Foundation

extension FakeGitHub {
    /// The endpoints the fake serves; faults and request records are per route.
    ///
    /// ```swift
    /// github.inject(.delay(.seconds(3)), on: .user)
    /// XCTAssertEqual(github.requestCount(on: .teams), 3)
    /// ```
    public enum Route: String, Sendable, Hashable, CaseIterable {
        /// `GET /user`
        case user
        /// `GET /orgs/{org}/memberships/{login}`
        case membership
        /// `GET /user/teams`
        case teams
        /// `POST /login/device/code`
        case deviceCode
        /// `POST /login/oauth/access_token`: device-flow polls and web-flow code exchanges.
        case accessToken
    }

    /// A misbehaviour to inject on a route.
    ///
    /// ```swift
    /// github.inject(.status(502), on: .user, times: 1)   // the next call only
    /// github.inject(.resetConnection, on: .teams)         // until clearFaults()
    /// ```
    public enum Fault: Sendable, Equatable {
        /// Wait this long before answering (then answer normally, or apply the other faults).
        case delay(Duration)
        /// Answer with this status and a GitHub-style `{"message": ...}` body.
        case status(Int)
        /// Answer 200 with a body that is not valid JSON.
        case malformedBody
        /// Answer 200 with a valid JSON document of the wrong shape (`{"unexpected": true}`).
        case wrongShape
        /// Abort the TCP connection with a reset (RST), without answering.
        case resetConnection
        /// Close the TCP connection cleanly, without answering.
        case closeConnection
        /// Teams only: announce this URL as the `rel="next"` page.
        case nextLink(String)
    }

    /// A user's membership of an organization, as `GET /orgs/{org}/memberships/{login}` shows it.
    ///
    /// ```swift
    /// github.addUser(login: "alice", token: "ghp_alice", organizations: ["acme": .admin, "lab": .pending])
    /// github.setMembership(login: "alice", organization: "acme", nil)   // alice left acme
    /// ```
    public struct Membership: Sendable, Equatable {
        /// `active` or `pending`.
        public var state: String
        /// `admin` or `member`.
        public var role: String

        public init(state: String = "active", role: String = "member") {
            self.state = state
            self.role = role
        }

        public static let member = Membership(state: "active", role: "member")
        public static let admin = Membership(state: "active", role: "admin")
        public static let pending = Membership(state: "pending", role: "member")
    }

    /// How the fake answers a token whose rate limit is exhausted.
    ///
    /// ```swift
    /// github.exhaustRateLimit(token: "ghp_alice", answer: .forbidden(resetAt: clock.now().addingTimeInterval(60)))
    /// github.exhaustRateLimit(token: "ghp_bob", answer: .tooManyRequests(retryAfter: 30))
    /// ```
    public enum RateLimitAnswer: Sendable, Equatable {
        /// 403 with `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset: resetAt` (primary limit).
        case forbidden(resetAt: Date)
        /// 429 with `Retry-After: seconds` (secondary limit).
        case tooManyRequests(retryAfter: Int)
    }

    /// One request as the fake received it.
    ///
    /// ```swift
    /// let request = try XCTUnwrap(github.requests(on: .user).first)
    /// XCTAssertEqual(request.headers["x-github-api-version"], "2022-11-28")
    /// XCTAssertEqual(request.token, "ghp_alice")
    /// ```
    public struct RecordedRequest: Sendable {
        public var route: Route
        public var method: String
        /// Path and query, as sent.
        public var target: String
        /// Header values by lowercased name (repeated fields joined with `, `).
        public var headers: [String: String]
        /// The bearer token, if any.
        public var token: String?
        /// The body, for POSTs (form-encoded in device-flow calls).
        public var body: String
        /// The decoded form fields of the body.
        public var form: [String: String]
        /// The client's port: requests with the same one came over the same connection.
        public var clientPort: Int?
    }
}

/// The fake's mutable world, guarded by `FakeGitHub.state`.
struct FakeGitHubState {
    struct User {
        var login: String
        var id: Int64
        var organizations: [String: FakeGitHub.Membership]
        var teams: [(organization: String, slug: String)]
    }

    struct TokenGrant {
        var login: String
        var scopes: Set<String>
        /// Order of addition: a user's first token is the one their approvals hand out.
        var serial: Int
        var revoked = false
        var used = 0
        var exhausted: FakeGitHub.RateLimitAnswer?
    }

    struct ActiveFault {
        var fault: FakeGitHub.Fault
        /// Uses left; nil for "until cleared".
        var remaining: Int?
    }

    struct DeviceAuthorization {
        enum Status { case pending, approved(token: String), denied, consumed }
        var deviceCode: String
        var userCode: String
        var scope: String
        var issuedAt: Date
        var expiresIn: Int
        var interval: Int
        var lastPoll: Date?
        var status: Status
    }

    /// A web-flow authorization waiting for its code's exchange.
    struct WebAuthorization {
        var token: String
        var redirectURI: String
        /// S256: base64url(SHA-256(verifier)).
        var codeChallenge: String
        var issuedAt: Date
    }

    var users: [String: User] = [:]
    var tokens: [String: TokenGrant] = [:]
    var faults: [FakeGitHub.Route: [ActiveFault]] = [:]
    var requests: [FakeGitHub.RecordedRequest] = []
    var devices: [String: DeviceAuthorization] = [:]
    /// By authorization code.
    var webAuthorizations: [String: WebAuthorization] = [:]
    var tokenSerial = 0
    var nextUserID: Int64 = 1000
    var rateLimit = 5000

    mutating func addToken(_ token: String, login: String, scopes: Set<String>) {
        tokenSerial += 1
        tokens[token] = .init(login: login, scopes: scopes, serial: tokenSerial)
    }

    /// The first token added for `login` that is not revoked: what a person approving a device
    /// or an authorization hands out.
    func firstUsableToken(of login: String) -> String? {
        tokens.filter { $0.value.login == login && !$0.value.revoked }.min { $0.value.serial < $1.value.serial }?.key
    }

    /// The faults to apply to one request on `route`, consuming one use of each.
    mutating func takeFaults(_ route: FakeGitHub.Route) -> [FakeGitHub.Fault] {
        guard var active = faults[route] else { return [] }
        let taken = active.map(\.fault)
        for index in active.indices { active[index].remaining? -= 1 }
        active.removeAll { $0.remaining.map { $0 <= 0 } ?? false }
        faults[route] = active
        return taken
    }
}
