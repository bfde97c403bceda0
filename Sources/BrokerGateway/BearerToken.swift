import BrokerValidator
import NIOHTTP1

/// The bearer token of a request (RFC 6750 section 2.1), from its one `Authorization` header.
enum BearerToken {
    /// The token, or nil when there is none: no header, another scheme, or an empty value.
    /// Several `Authorization` headers are treated as none: which one the upstream would
    /// honour is unknowable.
    static func from(_ headers: HTTPHeaders) -> String? {
        // One pass, no array: this runs on every request.
        var found: String?
        for (name, value) in headers where isAuthorization(name) {
            guard found == nil else { return nil }
            found = value
        }
        return found.flatMap(BearerCredentials.token(fromAuthorization:))
    }

    /// `authorization` in any case. Every byte of it is a letter, so `| 0x20` lowers exactly
    /// the bytes that can match it.
    private static func isAuthorization(_ name: String) -> Bool {
        var bytes = name.utf8.makeIterator()
        for expected in "authorization".utf8 {
            guard let byte = bytes.next(), byte | 0x20 == expected else { return false }
        }
        return bytes.next() == nil
    }
}
