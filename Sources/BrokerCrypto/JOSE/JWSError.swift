/// Why a compact JWS was rejected.
///
/// Descriptions are meant for logs and error responses; they never quote the token, which is
/// a bearer credential.
public enum JWSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The token is not three dot-separated non-empty parts (or similar structural problem).
    case malformed(String)
    /// The token is longer than the accepted maximum (bytes).
    case tooLong(limit: Int)
    /// A part is not strict unpadded base64url; the associated value names the part.
    case invalidEncoding(part: String)
    /// The protected header is not an acceptable JSON object.
    case invalidHeader(String)
    /// The header names an algorithm other than the verifying key's.
    case algorithmMismatch(expected: JWSAlgorithm, found: String)
    /// The signature does not verify.
    case invalidSignature

    public var description: String {
        switch self {
        case .malformed(let reason): "malformed token: \(reason)"
        case .tooLong(let limit): "token longer than \(limit) bytes"
        case .invalidEncoding(let part): "token \(part) is not base64url"
        case .invalidHeader(let reason): "invalid token header: \(reason)"
        case .algorithmMismatch(let expected, let found): "token algorithm \"\(found.prefix(16))\" does not match the key's \(expected.rawValue)"
        case .invalidSignature: "token signature is invalid"
        }
    }
}
