import BrokerCore
import BrokerCrypto
import Foundation
import Hummingbird

/// `POST /oauth/token` (RFC 6749 section 3.2): form-encoded requests, JSON answers, RFC 6749
/// error bodies `{"error","error_description"}`. Grants: `refresh_token` (rotation with reuse
/// detection, as `/api/org_token/refresh/`) and RFC 8693 token exchange of a GitHub token. No
/// resource-owner password grant: RFC 9700 forbids it. `POST /oauth/revoke` (RFC 7009) and
/// `POST /oauth/introspect` (RFC 7662, for a broker session token of an `admin` or
/// `introspector`).
struct OAuthRoutes<Context: RemoteAddressRequestContext> {
    let services: BrokerServices

    static var accessTokenType: String { "urn:ietf:params:oauth:token-type:access_token" }

    func register(on router: Router<Context>) {
        router.post("oauth/token") { request, context in
            await Self.answering(request) { try await token(request, services.auditContext(request, context)) }
        }
        router.post("oauth/revoke") { request, context in
            await Self.answering(request) { try await revoke(request, services.auditContext(request, context)) }
        }
        router.post("oauth/introspect") { request, context in
            await Self.answering(request) { try await introspect(request, services.auditContext(request, context)) }
        }
    }

    /// Every failure in the RFC 6749 error shape, a 401 or 403 with its challenge.
    static func answering(_ request: Request, _ body: () async throws -> Response) async -> Response {
        let failure: OAuthError
        do {
            return try await body()
        } catch let error as OAuthError {
            failure = error
        } catch let error as BrokerError {
            failure = OAuthError(error)
        } catch let error as StoreError where error.isUnavailable {
            failure = OAuthError(BrokerError(storeUnavailable: error))
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            failure = OAuthError(status: .contentTooLarge, code: "invalid_request", "the request body exceeds 64 KiB")
        } catch {
            failure = OAuthError(status: .internalServerError, code: "server_error", "internal error")
        }
        return failure.response(for: request)
    }

    /// RFC 7009: anyone holding a token may revoke it; the answer is 200 whether or not the
    /// token was valid, so it tells nothing. A refresh token ends its whole session; an access
    /// token is refused by introspection from then on.
    func revoke(_ request: Request, _ audit: AuditContext) async throws -> Response {
        var request = request
        let form = try await FormBody.read(&request)
        let token = try form.required("token")
        if let hint = try form.optional("token_type_hint"), !["access_token", "refresh_token"].contains(hint) {
            throw OAuthError(code: "unsupported_token_type", "token_type_hint must be access_token or refresh_token")
        }
        try await services.introspection.revoke(token, context: audit)
        return JSONResponses.make(.ok) { json in
            json.beginObject()
            json.endObject()
        }
    }

    /// RFC 7662. The caller authenticates with a broker session token of a holder whose global
    /// role is `admin` or `introspector` (the RFC requires the endpoint to be protected).
    func introspect(_ request: Request, _ audit: AuditContext) async throws -> Response {
        let principal: BrokerSessionService.Principal
        do {
            principal = try await services.sessions.authenticate(bearer: try request.bearerToken())
        } catch let error as BrokerError where error.code.httpStatus == 401 {
            throw OAuthError(status: .unauthorized, code: "invalid_token", error.httpDetail)
        }
        try principal.requireIntrospection()
        var request = request
        let form = try await FormBody.read(&request)
        let token = try form.required("token")
        let answer = try await services.introspection.introspect(token, by: principal, context: audit)
        return JSONResponses.make(.ok) { json in
            json.beginObject()
            switch answer {
            case .inactive:
                json.key("active"); json.bool(false)
            case .access(let claims):
                json.key("active"); json.bool(true)
                json.key("token_type"); json.string("access_token")
                json.key("iss"); json.string(claims.issuer)
                json.key("sub"); json.string(claims.subject)
                json.field("aud", strings: claims.audience)
                json.key("username"); json.string(claims.username)
                json.key("user_id"); json.int(claims.userID)
                json.key("iat"); json.int(claims.issuedAt)
                json.key("nbf"); json.int(claims.notBefore)
                json.key("exp"); json.int(claims.expiresAt)
                json.key("jti"); json.string(claims.tokenID)
                if let clientID = claims.clientID { json.key("client_id"); json.string(clientID) }
                if !claims.organization.isEmpty {
                    json.key("org"); json.string(claims.organization)
                    json.field("org_roles", strings: claims.organizationRoles)
                }
                if let clusterRoles = claims.clusterRoles { AccessTokenClaims.write(clusterRoles: clusterRoles, to: &json) }
                if let sessionID = claims.sessionID { json.key("sid"); json.string(sessionID) }
                if let role = claims.globalRole { json.key("role"); json.string(role) }
                if let githubLogin = claims.githubLogin { json.key("github_login"); json.string(githubLogin) }
            case .refresh(let family, let token, let user):
                json.key("active"); json.bool(true)
                json.key("token_type"); json.string("refresh_token")
                json.key("sub"); json.string(user.username)
                json.key("username"); json.string(user.username)
                json.key("user_id"); json.int(user.id)
                json.key("iat"); json.int(Int64(token.issuedAt.timeIntervalSince1970.rounded(.down)))
                json.key("exp"); json.int(Int64(token.expiresAt.timeIntervalSince1970.rounded(.down)))
                json.key("sid"); json.string(family.id)
                json.key("client_id"); json.string(family.client(slideRule: services.orgTokens.slideRuleClient).rawValue)
            }
            json.endObject()
        }
    }

    /// The tokens' `client_id` is the caller's (``OAuthClientIdentification``); a refresh token
    /// renews only for the client it was issued to, and without a `client_id` for its own.
    func token(_ request: Request, _ audit: AuditContext) async throws -> Response {
        var request = request
        let form = try await FormBody.read(&request)
        let client = try OAuthClientIdentification.client(of: request, form: form)
        switch try form.required("grant_type") {
        case OAuthGrant.refreshToken:
            let presented = try form.required("refresh_token")
            let bundle = try await services.orgTokens.refresh(presented, client: client, context: audit)
            return Self.tokenResponse(access: bundle.access, expiresIn: bundle.accessLifetime, refresh: bundle.refresh)
        case OAuthGrant.tokenExchange:
            let subjectTokenType = try form.required("subject_token_type")
            guard subjectTokenType == Self.accessTokenType else {
                throw OAuthError(code: "invalid_request", "subject_token_type must be \(Self.accessTokenType) (a GitHub token)")
            }
            guard let github = services.github else {
                throw OAuthError(status: .serviceUnavailable, code: "temporarily_unavailable", "GitHub logins are not enabled")
            }
            let subjectToken = try form.required("subject_token")
            if let audience = try form.optional("audience") {
                let bundle = try await github.generation1Login(
                    githubToken: subjectToken, organization: audience, as: .exchange, client: client, context: audit)
                return Self.tokenResponse(
                    access: bundle.access, expiresIn: bundle.accessLifetime, refresh: bundle.refresh, exchanged: true)
            }
            let issued = try await github.generation2Login(
                githubToken: subjectToken, method: .githubPAT, as: .exchange, client: client, context: audit)
            return Self.tokenResponse(
                access: issued.token, expiresIn: Int(issued.claims.expiresAt - issued.claims.issuedAt), refresh: nil,
                exchanged: true)
        case "password":
            throw OAuthError(code: "unsupported_grant_type", "the password grant is not supported (RFC 9700); use /api/org_token/")
        default:
            throw OAuthError(code: "unsupported_grant_type", "supported: \(OAuthGrant.refreshToken), \(OAuthGrant.tokenExchange)")
        }
    }

    static func tokenResponse(access: String, expiresIn: Int, refresh: String?, exchanged: Bool = false) -> Response {
        JSONResponses.make(.ok) { json in
            json.beginObject()
            json.key("access_token"); json.string(access)
            if exchanged { json.key("issued_token_type"); json.string(accessTokenType) }
            json.key("token_type"); json.string("Bearer")
            json.key("expires_in"); json.int(Int64(expiresIn))
            if let refresh { json.key("refresh_token"); json.string(refresh) }
            json.endObject()
        }
    }
}

/// An RFC 6749 section 5.2 error.
struct OAuthError: AuditableFailure {
    var status: HTTPResponse.Status
    var code: String
    var description: String
    var retryAfter: Int?
    /// The `WWW-Authenticate` of a 401 that is not about a bearer token (`invalid_client`).
    var challenge: String?

    var auditCode: String { code }
    var httpStatus: Int { status.code }

    init(status: HTTPResponse.Status = .badRequest, code: String, _ description: String) {
        self.status = status
        self.code = code
        self.description = description
    }

    /// The broker's errors in OAuth terms: a refresh token that cannot be used is
    /// `invalid_grant` (400, as RFC 6749 requires); a holder who lost the membership is
    /// `access_denied` (403); GitHub trouble is `temporarily_unavailable`.
    init(_ error: BrokerError) {
        switch error.code {
        case .invalidRefreshToken, .refreshTokenReused, .sessionExpired, .accountDisabled, .githubTokenInvalid,
            .githubIdentityMismatch, .credentialsChanged:
            self.init(code: "invalid_grant", error.httpDetail)
        case .notAMember, .unknownOrganization, .githubForbidden:
            self.init(status: .forbidden, code: "access_denied", error.httpDetail)
        case .forbidden:
            // RFC 6750 section 3.1: the bearer token lacks the privileges the request needs.
            self.init(status: .forbidden, code: "insufficient_scope", error.httpDetail)
        case .githubRateLimited, .githubUnavailable, .unavailable, .githubBadResponse, .auditUnavailable, .storeUnavailable:
            self.init(status: .serviceUnavailable, code: "temporarily_unavailable", error.httpDetail)
            retryAfter = error.retryAfter
        case .tooManyAttempts:
            self.init(status: .tooManyRequests, code: "too_many_attempts", error.httpDetail)
            retryAfter = error.retryAfter
        case .payloadTooLarge:
            self.init(status: .contentTooLarge, code: "invalid_request", error.httpDetail)
        case .unsupportedTransferCoding:
            self.init(status: .notImplemented, code: "invalid_request", error.httpDetail)
        case .missingToken, .invalidToken:
            self.init(status: .unauthorized, code: "invalid_token", error.httpDetail)
        case .internalError:
            self.init(status: .internalServerError, code: "server_error", "internal error")
        default:
            self.init(code: "invalid_request", error.httpDetail)
        }
    }

    func response(for request: Request) -> Response {
        var response = JSONResponses.make(status) { json in
            json.beginObject()
            json.key("error"); json.string(code)
            json.key("error_description"); json.string(description)
            json.endObject()
        }
        if let retryAfter { response.headers[.retryAfter] = String(max(1, retryAfter)) }
        if let challenge = challenge ?? HTTPChallenge.header(status: Int(status.code), description: description, request: request) {
            response.headers[.wwwAuthenticate] = challenge
        }
        return response
    }
}

/// An `application/x-www-form-urlencoded` body (``URLEncodedForm``) with OAuth's error shape.
struct FormBody {
    let parameters: [String: String]

    static func read(_ request: inout Request) async throws -> FormBody {
        do {
            return FormBody(parameters: try await URLEncodedForm.read(&request).parameters)
        } catch let malformed as URLEncodedForm.Malformed {
            throw OAuthError(code: "invalid_request", malformed.reason)
        }
    }

    func required(_ name: String) throws -> String {
        guard let value = parameters[name], !value.isEmpty else {
            throw OAuthError(code: "invalid_request", "\(name) is required")
        }
        return value
    }

    func optional(_ name: String) throws -> String? {
        guard let value = parameters[name], !value.isEmpty else { return nil }
        return value
    }
}
