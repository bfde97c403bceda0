import BrokerValidator
import NIOHTTP1

/// The bearer token of a request (RFC 6750 section 2.1), from its one `Authorization` header.
enum BearerToken {
    /// The token, or nil when there is none: no header, another scheme, or an empty value.
    /// Several `Authorization` headers are treated as none: which one the upstream would
    /// honour is unknowable.
    static func from(_ headers: HTTPHeaders) -> String? {
        let values = headers["authorization"]
        guard values.count == 1, let value = values.first else { return nil }
        return BearerCredentials.token(fromAuthorization: value)
    }
}
