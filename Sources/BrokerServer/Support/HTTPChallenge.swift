import BrokerCore
import BrokerValidator
import Hummingbird

/// The challenge of a 401 or 403 of the JSON route families (generation 1, generation 2, the
/// admin and membership API, OAuth), whatever their body's shape: RFC 9110 requires one on
/// every 401, RFC 6750 describes it for the 403 of a bearer-protected resource.
enum HTTPChallenge {
    static var realm: String { BearerChallenge.realm }

    /// `nil` for other statuses. A request that presented credentials (any `Authorization`)
    /// learns `invalid_token` (401: authenticate again) or `insufficient_scope` (403: another
    /// token would not help); one that presented none gets the bare challenge, as RFC 6750
    /// section 3.1 asks (a password login refused, a route called without a token).
    static func header(for error: BrokerError, request: Request) -> String? {
        header(status: error.code.httpStatus, description: error.httpDetail, request: request)
    }

    static func header(status: Int, description: String, request: Request) -> String? {
        guard status == 401 || status == 403 else { return nil }
        guard request.headers[.authorization] != nil else { return BearerChallenge().headerValue }
        return BearerChallenge(error: status == 401 ? .invalidToken : .insufficientScope, description: description)
            .headerValue
    }
}
