import BrokerValidator
import NIOCore
import NIOHTTP1

/// One forward-auth answer as `ForwardAuthResponder` decides it: status, headers and body.
/// `ForwardAuthHandler` adds what every answer carries (`Content-Length`, `Date`, `Server`)
/// when it writes it.
///
/// The refusals are built once (`static let`): an answer costs a copy of its headers, not
/// their construction. Header names are spelled as the gateway has always sent them.
struct ForwardAuthAnswer: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    /// Empty for an allowed request; a one-line reason for a refusal (proxies pass the status
    /// on, not the body).
    var body: ByteBuffer

    /// 200: a valid token for this cluster, and the identity the proxy passes on.
    static func allowed(account: String, roles: String) -> ForwardAuthAnswer {
        var headers = HTTPHeaders()
        // Room for the three the handler adds: one allocation per answer, not two.
        headers.reserveCapacity(3 + ForwardAuthAnswer.addedHeaderCount)
        headers.add(name: GatewayHeaders.account, value: account)
        headers.add(name: GatewayHeaders.orgRoles, value: roles)
        headers.add(name: "Cache-Control", value: "no-store")
        return ForwardAuthAnswer(status: .ok, headers: headers, body: ByteBuffer())
    }

    /// `Content-Length`, `Date`, `Server`.
    static let addedHeaderCount = 3

    /// A request whose HTTP framing is broken (bad chunk size, a body cut short, a
    /// `Transfer-Encoding` not ending in `chunked`): the client's error, never a 5xx.
    static let malformed = plainText(.badRequest, "malformed request\n")

    /// A request with a client-made `x-sliderule-*` header: a malformed request (RFC 6750's
    /// `invalid_request`), still a 403 as the gateway has always answered it.
    static let reservedHeaderRefusal = plainText(
        .forbidden, "x-sliderule-* request headers are set by the gateway\n",
        challenge: BearerChallenge(error: .invalidRequest, description: "x-sliderule-* request headers are set by the gateway"))

    /// The RFC 6750 challenge and a tiny body, per kind of refusal.
    static func refusal(_ refusal: GatewayRefusal) -> ForwardAuthAnswer {
        switch refusal {
        case .missingToken: missingToken
        case .invalidToken: invalidToken
        case .otherCluster: otherCluster
        }
    }

    private static let missingToken = plainText(.unauthorized, "missing bearer token\n", challenge: BearerChallenge())
    private static let invalidToken = plainText(
        .unauthorized, "invalid bearer token\n",
        challenge: BearerChallenge(error: .invalidToken, description: "invalid bearer token"))
    private static let otherCluster = plainText(
        .forbidden, "token is not for this cluster\n",
        challenge: BearerChallenge(error: .insufficientScope, description: "token is not for this cluster"))

    private static func plainText(_ status: HTTPResponseStatus, _ text: String, challenge: BearerChallenge? = nil) -> ForwardAuthAnswer {
        var headers = HTTPHeaders()
        if let challenge { headers.add(name: "WWW-Authenticate", value: challenge.headerValue) }
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Cache-Control", value: "no-store")
        return ForwardAuthAnswer(status: status, headers: headers, body: ByteBuffer(string: text))
    }
}
