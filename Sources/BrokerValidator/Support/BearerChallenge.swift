/// The `WWW-Authenticate` value of a refusal (RFC 6750 section 3, RFC 9110 section 11.6.1):
/// the `Bearer` scheme, the broker's realm, and the RFC 6750 error with its description when
/// the request presented credentials. Every 401 and 403 of the broker and of its gateway
/// carries one, so that a client library learns from the header alone whether to authenticate
/// again (`invalid_token`) or to stop (`insufficient_scope`).
///
/// ```swift
/// BearerChallenge(error: .invalidToken, description: "token expired").headerValue
/// // Bearer realm="broker", error="invalid_token", error_description="token expired"
/// ```
public struct BearerChallenge: Sendable, Equatable {
    /// The error codes RFC 6750 section 3.1 defines.
    public enum ErrorCode: String, Sendable {
        case invalidRequest = "invalid_request"
        case invalidToken = "invalid_token"
        case insufficientScope = "insufficient_scope"
    }

    /// One protection space: every route and gateway accepts the same tokens.
    public static let realm = "broker"

    /// `nil` when the request presented no credentials (RFC 6750 section 3.1: then no error).
    public var error: ErrorCode?
    public var description: String?

    public init(error: ErrorCode? = nil, description: String? = nil) {
        self.error = error
        self.description = description
    }

    /// `Bearer realm="broker"[, error="…"[, error_description="…"]]`.
    public var headerValue: String {
        var value = #"Bearer realm="\#(Self.realm)""#
        guard let error else { return value }
        value += #", error="\#(error.rawValue)""#
        if let description, !description.isEmpty {
            value += #", error_description="\#(Self.quotable(description))""#
        }
        return value
    }

    /// RFC 6750 section 3: `error_description` holds %x20-21 / %x23-5B / %x5D-7E only. Other
    /// characters become `?` (a quote `'`), so a name from a request cannot end the parameter
    /// or the header.
    static func quotable(_ text: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars.prefix(200) {
            switch scalar.value {
            case 0x22: result.append("'")
            case 0x20...0x21, 0x23...0x5B, 0x5D...0x7E: result.append(scalar)
            default: result.append("?")
            }
        }
        return String(result)
    }
}
