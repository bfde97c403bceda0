import BrokerCore
import BrokerCrypto
import Hummingbird

/// Broker session tokens: `POST /api/session/` (password), `POST /api/session/github/` (a GitHub
/// token) and `GET /api/session/` (who the bearer is). A session token authenticates the
/// membership and admin routes; it names no organization and no gateway accepts it.
struct SessionRoutes<Context: RemoteAddressRequestContext> {
    let services: BrokerServices

    func register(on router: Router<Context>) {
        let session = router.group("api/session")
        session.post { request, context in try await signIn(request, context) }
        session.post("github") { request, context in try await signInWithGitHub(request, context) }
        session.get { request, _ in
            let principal = try await services.principal(of: request)
            return JSONResponses.make(.ok) { json in
                json.beginObject()
                json.key("user"); json.user(principal.user)
                json.key("expires_at"); json.int(principal.claims.expiresAt)
                json.endObject()
            }
        }
    }

    func signIn(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let body = try await JSONRequestBody.read(&request)
        let (username, password) = (try body.string("username"), try body.password())
        let session = try await services.sessions.signIn(
            username: username, password: password, context: services.auditContext(request, context))
        return Self.sessionResponse(session)
    }

    func signInWithGitHub(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let body = try await JSONRequestBody.read(&request)
        let githubToken = try body.string("access_token")
        let session = try await services.sessions.signIn(githubToken: githubToken, context: services.auditContext(request, context))
        return Self.sessionResponse(session)
    }

    static func sessionResponse(_ session: BrokerSessionService.SessionToken) -> Response {
        JSONResponses.make(.ok) { json in
            json.beginObject()
            json.key("token"); json.string(session.token)
            json.key("token_type"); json.string("Bearer")
            json.key("expires_in"); json.int(Int64(session.expiresIn))
            json.key("user"); json.user(session.user)
            json.endObject()
        }
    }
}

extension BrokerServices {
    /// The verified holder of the request's broker session token (401 otherwise).
    func principal(of request: Request) async throws -> BrokerSessionService.Principal {
        try await sessions.authenticate(bearer: try request.bearerToken())
    }
}
