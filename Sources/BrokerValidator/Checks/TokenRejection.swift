/// Why a token was not accepted. The description is safe to show the caller and to log: it
/// never contains the token or any part of it.
///
/// ```swift
/// do {
///     _ = try checks.verify(bearer, audience: "cluster1", now: Date()) { keys[$0] }
/// } catch .wrongAudience {
///     // authenticated, but for another cluster: 403
/// } catch {
///     logger.info("token refused: \(error)")   // 401
/// }
/// ```
public enum TokenRejection: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    case disallowedAlgorithm(String)
    case disallowedHeader(String)
    case wrongType
    case unknownKey
    case algorithmMismatch
    case badSignature
    case missingClaim(String)
    case wrongIssuer
    case wrongAudience
    case wrongTokenType
    case expired
    case notYetValid
    case issuedInFuture

    public var description: String {
        switch self {
        // The associated texts may quote the token's header (its `alg`): escaped, so that a
        // newline in a header cannot forge a log line.
        case .malformed(let why): "malformed token: \(LogText.escaped(why, limit: 200))"
        case .disallowedAlgorithm(let alg): "algorithm \(LogText.escaped(alg, limit: 20)) is not allowed"
        case .disallowedHeader(let name): "header parameter \(LogText.escaped(name, limit: 20)) is not allowed"
        case .wrongType: "token type (typ) must be at+jwt"
        case .unknownKey: "unknown signing key (kid)"
        case .algorithmMismatch: "algorithm does not match the key"
        case .badSignature: "signature is invalid"
        case .missingClaim(let name): "claim \(name) is missing or has the wrong type"
        case .wrongIssuer: "issuer (iss) is not this broker"
        case .wrongAudience: "audience (aud) does not include the expected audience"
        case .wrongTokenType: "token_type must be access"
        case .expired: "token has expired"
        case .notYetValid: "token is not valid yet (nbf)"
        case .issuedInFuture: "token is issued in the future (iat)"
        }
    }
}
