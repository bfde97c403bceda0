import BrokerCrypto
import BrokerSync
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

extension HTTPField.Name {
    static let rateLimitLimit = Self("X-RateLimit-Limit")!
    static let rateLimitRemaining = Self("X-RateLimit-Remaining")!
    static let rateLimitReset = Self("X-RateLimit-Reset")!
    static let retryAfter = Self("Retry-After")!
    static let link = Self("Link")!
}

extension RouterBox {
    func register(on router: Router<FakeGitHubContext>, apiPathPrefix prefix: String) {
        router.get("\(prefix)/user") { request, context in
            try await self.serve(.user, request, context) { fake, request in fake.user(request) }
        }
        router.get("\(prefix)/orgs/:org/memberships/:login") { request, context in
            let org = context.parameters.get("org") ?? ""
            let login = context.parameters.get("login") ?? ""
            return try await self.serve(.membership, request, context) { fake, request in
                fake.membership(request, organization: org, login: login)
            }
        }
        router.get("\(prefix)/user/teams") { request, context in
            try await self.serve(.teams, request, context) { fake, request in fake.teams(request) }
        }
        router.post("/login/device/code") { request, context in
            try await self.serve(.deviceCode, request, context) { fake, request in fake.deviceCode(request) }
        }
        router.post("/login/oauth/access_token") { request, context in
            try await self.serve(.accessToken, request, context) { fake, request in fake.accessToken(request) }
        }
        // The page a person opens to approve a device code (browser tests): no script, a form.
        router.get("/login/device") { _, _ in
            Self.html(
                """
                <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Device activation · fake GitHub</title></head>
                <body><h1>Device activation</h1><form method="post" action="/login/device">
                <label for="user_code">Code</label> <input id="user_code" name="user_code">
                <label for="login">GitHub user</label> <input id="login" name="login">
                <button type="submit" id="authorize">Authorize</button></form></body></html>
                """)
        }
        router.post("/login/device") { request, _ in
            guard let fake = self.fake.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            let body = String(buffer: try await request.body.collect(upTo: 1 << 16))
            let form = FormDecoding.decode(body)
            let approved = fake.approveDevice(userCode: form["user_code"] ?? "", login: form["login"] ?? "")
            return Self.html(
                approved
                    ? "<!doctype html><html lang=\"en\"><head><title>Approved</title></head><body><p id=\"done\">Device approved.</p></body></html>"
                    : "<!doctype html><html lang=\"en\"><head><title>Unknown</title></head><body><p id=\"unknown\">Unknown code or user.</p></body></html>")
        }
        // The web flow's authorize page (browser tests): no script, a form that carries the
        // request's parameters in hidden fields and asks who approves.
        router.get("/login/oauth/authorize") { request, _ in
            guard let fake = self.fake.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            return fake.authorizePage(FormDecoding.decode(request.uri.query ?? ""))
        }
        router.post("/login/oauth/authorize") { request, _ in
            guard let fake = self.fake.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            let body = String(buffer: try await request.body.collect(upTo: 1 << 16))
            return fake.authorizeDecision(FormDecoding.decode(body))
        }
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// Records the request, applies the route's faults, then answers with `answer`.
    private func serve(
        _ route: FakeGitHub.Route, _ request: Request, _ context: FakeGitHubContext,
        answer: @Sendable (FakeGitHub, FakeGitHub.RecordedRequest) -> Response
    ) async throws -> Response {
        guard let fake = fake.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
        let buffer = try await request.body.collect(upTo: 1 << 20)
        let recorded = FakeGitHub.RecordedRequest(
            request, route: route, body: String(buffer: buffer), clientPort: context.channel.remoteAddress?.port)
        let faults = fake.state.withLock { state in
            state.requests.append(recorded)
            return state.takeFaults(route)
        }
        var nextLink: String?
        for fault in faults {
            switch fault {
            case .delay(let duration):
                try await Task.sleep(for: duration)
            case .status(let code):
                return FakeGitHub.json(code, ["message": .string("Injected failure"), "documentation_url": .string("")])
            case .malformedBody:
                return Response(
                    status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"login": "alice", "id": 12"#)))
            case .wrongShape:
                return FakeGitHub.json(200, ["unexpected": .bool(true)])
            case .resetConnection:
                // SO_LINGER with a zero timeout turns close() into a TCP RST.
                if let provider = context.channel as? any SocketOptionProvider {
                    try? await provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
                }
                try? await context.channel.close()
                return Response(status: .internalServerError)
            case .closeConnection:
                try? await context.channel.close()
                return Response(status: .internalServerError)
            case .nextLink(let url):
                nextLink = url
            }
        }
        var response = answer(fake, recorded)
        if let nextLink, route == .teams {
            response.headers[.link] = "<\(nextLink)>; rel=\"next\""
        }
        return response
    }
}

extension FakeGitHub.RecordedRequest {
    init(_ request: Request, route: FakeGitHub.Route, body: String, clientPort: Int?) {
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName.lowercased()
            headers[name] = headers[name].map { "\($0), \(field.value)" } ?? field.value
        }
        var token: String?
        if let authorization = headers["authorization"] {
            for scheme in ["Bearer ", "token "] where authorization.hasPrefix(scheme) {
                token = String(authorization.dropFirst(scheme.count))
            }
        }
        self.init(
            route: route, method: request.method.rawValue, target: request.uri.description, headers: headers,
            token: token, body: body, form: FormDecoding.decode(body), clientPort: clientPort)
    }
}

// MARK: - Answers

extension FakeGitHub {
    static func json(_ status: Int, _ object: [String: JSONValue], headers: HTTPFields = [:]) -> Response {
        json(status, .object(object), headers: headers)
    }

    static func json(_ status: Int, _ value: JSONValue, headers: HTTPFields = [:]) -> Response {
        var writer = JSONWriter()
        writer.value(value)
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(
            status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: writer.bytes)))
    }

    /// Authenticates an API call as GitHub does: the user, or the answer to give instead
    /// (401, or a rate-limit refusal), plus the rate-limit headers every API answer carries.
    private func authenticate(_ request: RecordedRequest, needs scope: String? = nil)
        -> (user: FakeGitHubState.User?, headers: HTTPFields, refusal: Response?)
    {
        let now = now()
        return state.withLock { state in
            var headers: HTTPFields = [:]
            headers[.rateLimitLimit] = "\(state.rateLimit)"
            headers[.rateLimitReset] = "\(Int64(now.timeIntervalSince1970) + 3600)"
            guard let token = request.token, let grant = state.tokens[token], !grant.revoked,
                let user = state.users[grant.login]
            else {
                headers[.rateLimitRemaining] = "\(state.rateLimit)"
                let body: [String: JSONValue] = [
                    "message": .string("Bad credentials"),
                    "documentation_url": .string("https://docs.github.com/rest"),
                ]
                return (nil, headers, Self.json(401, body, headers: headers))
            }
            switch grant.exhausted {
            case .forbidden(let resetAt):
                headers[.rateLimitRemaining] = "0"
                headers[.rateLimitReset] = "\(Int64(resetAt.timeIntervalSince1970))"
                let message = "API rate limit exceeded for user ID \(user.id)."
                return (nil, headers, Self.json(403, ["message": .string(message)], headers: headers))
            case .tooManyRequests(let seconds):
                headers[.rateLimitRemaining] = "\(max(0, state.rateLimit - grant.used))"
                headers[.retryAfter] = "\(seconds)"
                let message = "You have exceeded a secondary rate limit."
                return (nil, headers, Self.json(429, ["message": .string(message)], headers: headers))
            case nil:
                break
            }
            state.tokens[token]?.used += 1
            headers[.rateLimitRemaining] = "\(max(0, state.rateLimit - grant.used - 1))"
            if let scope, !grant.scopes.contains(scope) {
                let message = "You need at least \(scope) scope or user scope to list your organization memberships."
                return (nil, headers, Self.json(403, ["message": .string(message)], headers: headers))
            }
            return (user, headers, nil)
        }
    }

    func user(_ request: RecordedRequest) -> Response {
        let (user, headers, refusal) = authenticate(request)
        guard let user else { return refusal! }
        return Self.json(
            200, ["login": .string(user.login), "id": .integer(user.id), "type": .string("User")], headers: headers)
    }

    func membership(_ request: RecordedRequest, organization: String, login: String) -> Response {
        let (caller, headers, refusal) = authenticate(request, needs: "read:org")
        guard let caller else { return refusal! }
        let target = state.withLock { $0.users[login] }
        // GitHub hides an org's memberships from non-members, and non-members from everyone.
        guard caller.organizations[organization] != nil, let membership = target?.organizations[organization] else {
            return Self.json(404, ["message": .string("Not Found")], headers: headers)
        }
        return Self.json(
            200,
            [
                "state": .string(membership.state), "role": .string(membership.role),
                "organization": .object(["login": .string(organization)]),
                "user": .object(["login": .string(login)]),
            ],
            headers: headers)
    }

    func teams(_ request: RecordedRequest) -> Response {
        let (user, headers, refusal) = authenticate(request, needs: "read:org")
        guard let user else { return refusal! }
        let query = FormDecoding.decode(String(request.target.drop { $0 != "?" }.dropFirst()))
        let perPage = min(max(Int(query["per_page"] ?? "") ?? 30, 1), maximumPerPage)
        let page = max(Int(query["page"] ?? "") ?? 1, 1)
        let all = user.teams
        let lastPage = max(1, (all.count + perPage - 1) / perPage)
        let slice = all.dropFirst((page - 1) * perPage).prefix(perPage)
        let body = JSONValue.array(
            slice.map { team in
                .object([
                    "slug": .string(team.slug), "name": .string(team.slug),
                    "organization": .object(["login": .string(team.organization)]),
                ])
            })
        var links: [String] = []
        let base = "\(apiURL)/user/teams?per_page=\(perPage)&page="
        if page < lastPage {
            links.append("<\(base)\(page + 1)>; rel=\"next\"")
            links.append("<\(base)\(lastPage)>; rel=\"last\"")
        }
        if page > 1 {
            links.append("<\(base)\(page - 1)>; rel=\"prev\"")
            links.append("<\(base)1>; rel=\"first\"")
        }
        var allHeaders = headers
        if !links.isEmpty { allHeaders[.link] = links.joined(separator: ", ") }
        return Self.json(200, body, headers: allHeaders)
    }

    // MARK: Device flow (GitHub answers OAuth errors with 200 and an `error` member)

    func deviceCode(_ request: RecordedRequest) -> Response {
        guard request.form["client_id"] == clientID else {
            return Self.json(200, ["error": .string("incorrect_client_credentials")])
        }
        var generator = SystemRandomNumberGenerator()
        let deviceCode = (0..<20).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }
            .joined()
        let alphabet = Array("BCDFGHJKLMNPQRSTVWXZ")
        let letters = (0..<8).map { _ in String(alphabet.randomElement(using: &generator)!) }
        let userCode = letters[0..<4].joined() + "-" + letters[4..<8].joined()
        let authorization = FakeGitHubState.DeviceAuthorization(
            deviceCode: deviceCode, userCode: userCode, scope: request.form["scope"] ?? "", issuedAt: now(),
            expiresIn: deviceExpiresIn, interval: deviceInterval, lastPoll: nil, status: .pending)
        state.withLock { $0.devices[deviceCode] = authorization }
        return Self.json(
            200,
            [
                "device_code": .string(deviceCode), "user_code": .string(userCode),
                "verification_uri": .string("\(webURL)/login/device"),
                "expires_in": .integer(Int64(deviceExpiresIn)), "interval": .integer(Int64(deviceInterval)),
            ])
    }

    func accessToken(_ request: RecordedRequest) -> Response {
        func error(_ code: String, interval: Int? = nil) -> Response {
            var body: [String: JSONValue] = ["error": .string(code), "error_description": .string(code)]
            if let interval { body["interval"] = .integer(Int64(interval)) }
            return Self.json(200, body)
        }
        guard request.form["client_id"] == clientID else { return error("incorrect_client_credentials") }
        // GitHub takes a code exchange without grant_type; RFC 6749 names it authorization_code.
        let grantType = request.form["grant_type"]
        if grantType == "authorization_code" || grantType == nil && request.form["code"] != nil {
            return codeExchange(request)
        }
        guard grantType == "urn:ietf:params:oauth:grant-type:device_code" else {
            return error("unsupported_grant_type")
        }
        let now = now()
        let code = request.form["device_code"] ?? ""
        return state.withLock { state in
            guard var device = state.devices[code] else { return error("incorrect_device_code") }
            defer { state.devices[code] = device }
            if now.timeIntervalSince(device.issuedAt) >= TimeInterval(device.expiresIn) { return error("expired_token") }
            if let last = device.lastPoll, now.timeIntervalSince(last) < TimeInterval(device.interval) {
                // GitHub adds 5 seconds each time a client polls too fast.
                device.interval += 5
                device.lastPoll = now
                return error("slow_down", interval: device.interval)
            }
            device.lastPoll = now
            switch device.status {
            case .pending: return error("authorization_pending")
            case .denied: return error("access_denied")
            case .consumed: return error("incorrect_device_code")
            case .approved(let token):
                device.status = .consumed
                return Self.json(
                    200,
                    ["access_token": .string(token), "token_type": .string("bearer"), "scope": .string(device.scope)])
            }
        }
    }
}

// MARK: - Web flow

extension FakeGitHub {
    /// The parameters the authorize page passes on to its form, in hidden fields.
    static let authorizeParameters = [
        "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method",
    ]

    /// What is wrong with an authorization request, checked before the page is shown and again
    /// when it is approved; nil when nothing is. PKCE (S256) is required: the broker always
    /// sends it, and a request without it is a bug to see.
    func authorizationProblem(_ fields: [String: String]) -> String? {
        guard fields["client_id"] == clientID else { return "The client_id is not this application's." }
        guard let redirectURI = fields["redirect_uri"], redirectURI.hasPrefix("http://") || redirectURI.hasPrefix("https://")
        else { return "The redirect_uri must be an http(s) URL." }
        guard let challenge = fields["code_challenge"], !challenge.isEmpty else { return "A code_challenge is required." }
        guard fields["code_challenge_method"] == "S256" else { return "The code_challenge_method must be S256." }
        return nil
    }

    func authorizePage(_ query: [String: String]) -> Response {
        if let problem = authorizationProblem(query) { return Self.authorizationRefused(problem) }
        let hidden = Self.authorizeParameters.map { name in
            "<input type=\"hidden\" name=\"\(name)\" value=\"\(Self.htmlEscaped(query[name] ?? ""))\">"
        }.joined(separator: "\n")
        return RouterBox.html(
            """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Authorize application · fake GitHub</title></head>
            <body><h1>Authorize application</h1><form method="post" action="/login/oauth/authorize">
            \(hidden)
            <label for="login">GitHub user</label> <input id="login" name="login">
            <button type="submit" id="authorize">Authorize</button></form></body></html>
            """)
    }

    /// The form's answer: back to the application with a code (and its `state`), as GitHub's
    /// 302 does, or a page saying the user is unknown.
    func authorizeDecision(_ form: [String: String]) -> Response {
        if let problem = authorizationProblem(form) { return Self.authorizationRefused(problem) }
        let redirectURI = form["redirect_uri"] ?? ""
        guard let code = authorize(login: form["login"] ?? "", redirectURI: redirectURI, codeChallenge: form["code_challenge"] ?? "")
        else {
            return RouterBox.html(
                "<!doctype html><html lang=\"en\"><head><title>Unknown</title></head><body><p id=\"unknown\">Unknown user.</p></body></html>")
        }
        var location = redirectURI + (redirectURI.contains("?") ? "&" : "?") + "code=" + Self.queryEscaped(code)
        if let state = form["state"], !state.isEmpty { location += "&state=" + Self.queryEscaped(state) }
        return Response(status: .found, headers: [.location: location])
    }

    /// `POST /login/oauth/access_token` with a code, its client id already checked: the client
    /// secret, then the code (good once, whatever the outcome of the attempt that names it, and
    /// for ``authorizationCodeLifetime``), its redirect URI and its PKCE verifier. Errors as
    /// GitHub gives them: 200 and an `error` member.
    func codeExchange(_ request: RecordedRequest) -> Response {
        func error(_ code: String) -> Response {
            Self.json(200, ["error": .string(code), "error_description": .string(code)])
        }
        guard request.form["client_secret"] == clientSecret else { return error("incorrect_client_credentials") }
        let now = now()
        return state.withLock { state in
            guard let authorization = state.webAuthorizations.removeValue(forKey: request.form["code"] ?? "") else {
                return error("bad_verification_code")
            }
            guard now.timeIntervalSince(authorization.issuedAt) < Self.authorizationCodeLifetime else {
                return error("bad_verification_code")
            }
            guard request.form["redirect_uri"] == authorization.redirectURI else { return error("redirect_uri_mismatch") }
            let verifier = Array((request.form["code_verifier"] ?? "").utf8)
            let challenge = Array(Base64URL.encode(Digest.sha256(verifier)).utf8)
            guard constantTimeEquals(challenge, Array(authorization.codeChallenge.utf8)) else {
                return error("bad_verification_code")
            }
            guard let grant = state.tokens[authorization.token], !grant.revoked else { return error("bad_verification_code") }
            return Self.json(
                200,
                [
                    "access_token": .string(authorization.token), "token_type": .string("bearer"),
                    "scope": .string(grant.scopes.sorted().joined(separator: ",")),
                ])
        }
    }

    static func authorizationRefused(_ problem: String) -> Response {
        RouterBox.html(
            "<!doctype html><html lang=\"en\"><head><title>Error</title></head><body><p id=\"error\">\(htmlEscaped(problem))</p></body></html>",
            status: .badRequest)
    }

    static func htmlEscaped(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// RFC 3986's unreserved characters kept, every other byte `%XX`.
    static func queryEscaped(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    private static let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}

/// `application/x-www-form-urlencoded` (and query string) decoding.
enum FormDecoding {
    static func decode(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = unescape(parts[0]) else { continue }
            fields[name] = parts.count > 1 ? unescape(parts[1]) ?? "" : ""
        }
        return fields
    }

    private static func unescape(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
