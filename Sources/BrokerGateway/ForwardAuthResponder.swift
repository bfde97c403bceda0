import BrokerValidator
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// The forward-auth decision for nginx `auth_request`, Traefik ForwardAuth and Envoy's HTTP
/// ext_authz: any method, any path; the bearer token in `Authorization` decides.
///
/// - 200, empty body, `x-sliderule-account` and `x-sliderule-org-roles`: a valid token for
///   this cluster.
/// - 401 with `WWW-Authenticate: Bearer`: no token, or an invalid one.
/// - 403: a valid token for another cluster; or a request carrying an `x-sliderule-*` header
///   that is neither one of the two above (which the proxy replaces with this answer's) nor
///   one SlideRule's client sends (`GatewayHeaders`): the proxies this answers for cannot
///   remove headers by pattern, so such a request is refused rather than passed on with it.
/// - `HEAD`: the same answer without its body.
///
/// The token is never logged; a refusal's reason is, and it never quotes the token.
///
/// ```swift
/// let responder = ForwardAuthResponder(validator: validator, cluster: "cluster1")
/// let app = Application(responder: responder, configuration: .init(address: .hostname("127.0.0.1", port: 9000)))
/// ```
public struct ForwardAuthResponder: HTTPResponder {
    public typealias Context = BasicRequestContext

    public let validator: GatewayValidator
    /// This gateway's cluster name: the audience every accepted token must name.
    public let cluster: String

    public init(validator: GatewayValidator, cluster: String) {
        self.validator = validator
        self.cluster = cluster
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let response = try await decide(request, context: context)
        // A body after the head of a HEAD answer would be read as the start of the next answer.
        return request.method == .head ? response.createHeadResponse() : response
    }

    private func decide(_ request: Request, context: Context) async throws -> Response {
        // The decision reads only headers, but the body is read (and dropped) first: a message
        // whose framing is broken gets one answer, 400, instead of a decision followed by the
        // HTTP server's own 400 on the same connection.
        do {
            for try await _ in request.body {}
        } catch let error as HTTPParserError {
            context.logger.debug("malformed request", metadata: ["error": "\(error)"])
            return Self.malformed
        } catch is ChannelError, is IOError {
            context.logger.debug("the client closed the connection before its request was complete")
            return Self.malformed
        }
        let foreign = GatewayHeaders.reservedNames(in: request.headers.map(\.name.canonicalName))
            .filter { !GatewayHeaders.identity.contains($0) }
        if !foreign.isEmpty {
            context.logger.info(
                "refused: the request carries x-sliderule-* headers only a gateway may set",
                metadata: ["headers": "\(foreign.prefix(8).map { LogText.escaped($0, limit: 64) }.joined(separator: ","))"])
            return Self.reservedHeaderRefusal
        }
        let result = await validator.validate(BearerToken.from(request.headers), cluster: cluster)
        switch result {
        case .success(let identity):
            guard var headers = IdentityHeaders.fields(for: identity) else {
                context.logger.info(
                    "refused: the token's sub cannot be sent in a header",
                    metadata: ["jti": "\(LogText.escaped(identity.claims.tokenID, limit: 64))"])
                return Self.refusal(.invalidToken(.missingClaim("sub")))
            }
            headers[.cacheControl] = "no-store"
            context.logger.debug(
                "allowed",
                metadata: [
                    "account": "\(LogText.escaped(identity.account, limit: 128))",
                    "jti": "\(LogText.escaped(identity.claims.tokenID, limit: 64))",
                ])
            return Response(status: .ok, headers: headers)
        case .failure(let refusal):
            // The reason may quote the token's header: `TokenRejection` escapes it (LogText).
            context.logger.info("refused", metadata: ["status": "\(refusal.httpStatus)", "reason": "\(refusal)"])
            return Self.refusal(refusal)
        }
    }

    /// A request whose HTTP framing is broken (bad chunk size, a body cut short, a
    /// `Transfer-Encoding` not ending in `chunked`): the client's error, never a 5xx.
    static var malformed: Response {
        Response(
            status: .badRequest,
            headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: "malformed request\n")))
    }

    /// A request with a client-made `x-sliderule-*` header. No challenge: another token would
    /// not help.
    static var reservedHeaderRefusal: Response {
        Response(
            status: .forbidden,
            headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: "x-sliderule-* request headers are set by the gateway\n")))
    }

    /// A tiny body and the RFC 6750 challenge; proxies pass the status on, not the body.
    static func refusal(_ refusal: GatewayRefusal) -> Response {
        let status: HTTPResponse.Status
        let challenge: String
        let body: String
        switch refusal {
        case .missingToken:
            (status, challenge, body) = (.unauthorized, "Bearer", "missing bearer token\n")
        case .invalidToken:
            (status, challenge, body) = (.unauthorized, #"Bearer error="invalid_token""#, "invalid bearer token\n")
        case .otherCluster:
            (status, challenge, body) = (.forbidden, #"Bearer error="insufficient_scope""#, "token is not for this cluster\n")
        }
        return Response(
            status: status,
            headers: [
                .wwwAuthenticate: challenge, .contentType: "text/plain; charset=utf-8", .cacheControl: "no-store",
            ],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
