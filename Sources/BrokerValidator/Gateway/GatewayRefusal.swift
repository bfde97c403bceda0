/// Why a gateway turns a request away, split the way HTTP clients act on it: 401 means
/// "authenticate (again)", 403 means "you are who you say, but not for this cluster".
///
/// ```swift
/// switch await validator.validate(bearer, cluster: "cluster1") {
/// case .success(let identity): allow(identity)
/// case .failure(let refusal): respond(status: refusal.httpStatus)
/// }
/// ```
public enum GatewayRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// No bearer token was presented.
    case missingToken
    /// The token fails a rule other than the audience: forged, expired, another issuer, an
    /// unknown key... The reason is safe to log; it never contains the token.
    case invalidToken(TokenRejection)
    /// A valid token whose `aud` does not name this cluster (a `*` never does).
    case otherCluster

    /// 401 for a missing or invalid token, 403 for another cluster's token.
    public var httpStatus: Int {
        switch self {
        case .missingToken, .invalidToken: 401
        case .otherCluster: 403
        }
    }

    public var description: String {
        switch self {
        case .missingToken: "no bearer token"
        case .invalidToken(let rejection): rejection.description
        case .otherCluster: "token is valid but not for this cluster"
        }
    }
}
