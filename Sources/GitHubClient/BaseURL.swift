import Foundation

/// A validated base URL (`scheme://host[:port][/path]`) to which API paths are appended.
///
/// Parsed by hand, narrowly, rather than with `URL`: the rules that matter here (no user info,
/// no query, `http` only for loopback) are about exact text, and libcurl receives exactly the
/// string built from these parts.
struct BaseURL: Sendable, Equatable {
    /// `http` or `https`, lowercased.
    let scheme: String
    /// `host` or `host:port` as given (an IPv6 literal keeps its brackets).
    let authority: String
    /// The host without port or brackets, lowercased.
    let host: String
    /// `""` or a path starting with `/` and not ending with `/` (e.g. `/api/v3`).
    let path: String

    /// The base as text, without a trailing slash.
    var string: String { "\(scheme)://\(authority)\(path)" }

    init(_ text: String, name: String) throws(GitHubClientConfigurationError) {
        func fail(_ why: String) -> GitHubClientConfigurationError {
            // A URL with user info carries a password: name the problem, not the URL.
            GitHubClientConfigurationError(text.contains("@") ? "\(name) \(why)" : "\(name) \(why): \(text)")
        }
        guard let schemeEnd = text.range(of: "://") else { throw fail("is not an absolute URL") }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { throw fail("must use https (or http on loopback)") }
        let rest = text[schemeEnd.upperBound...]
        guard !rest.contains(where: { $0 == "?" || $0 == "#" || $0 == "@" || $0 == "\\" || $0.isWhitespace }) else {
            throw fail("must not contain a query, fragment, user info or spaces")
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        var path = String(rest[slash...])
        while path.hasSuffix("/") { path.removeLast() }
        guard !path.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) else {
            throw fail("must not contain dot segments")
        }

        let host: String
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw fail("has an unterminated IPv6 literal") }
            host = String(authority[authority.index(after: authority.startIndex)..<close]).lowercased()
            let after = authority[authority.index(after: close)...]
            guard after.isEmpty || Self.isPort(after.dropFirst()) && after.first == ":" else { throw fail("has an invalid port") }
        } else {
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2, let first = parts.first, !first.isEmpty else { throw fail("has no valid host") }
            if parts.count == 2, !Self.isPort(parts[1]) { throw fail("has an invalid port") }
            host = first.lowercased()
        }
        guard !host.isEmpty else { throw fail("has no host") }
        if scheme == "http", !Self.isLoopback(host) {
            // A token sent in clear text to anything but this machine could be read on the way.
            throw fail("uses plain http, which is only allowed for loopback hosts (127.0.0.0/8, ::1, localhost)")
        }
        self.scheme = scheme
        self.authority = authority
        self.host = host
        self.path = path
    }

    /// The URL of `segments` under this base, each segment percent-encoded, so that an org or
    /// login holding `/`, `?` or `..` cannot reach another endpoint.
    func appending(_ segments: String..., query: String? = nil) -> String {
        var url = string
        for segment in segments { url += "/" + FormEncoding.percentEncode(segment) }
        if let query { url += "?" + query }
        return url
    }

    /// Whether `url` lies under this base: same scheme and authority, and a path inside the
    /// base path. Used before following a `Link` header, so the token goes nowhere else.
    func contains(_ url: String) -> Bool {
        // Scheme and host compare case-insensitively; the path exactly. The path prefix must
        // end at a slash, so `https://h:1.evil` or `/api/v3x` do not pass for `https://h:1/api/v3`.
        let origin = "\(scheme)://\(authority)"
        guard url.count > origin.count, url.prefix(origin.count).lowercased() == origin.lowercased() else {
            return false
        }
        let rest = url.dropFirst(origin.count)
        guard rest.hasPrefix(path + "/") else { return false }
        guard !rest.contains(where: { $0 == "#" || $0 == "\\" || $0 == "@" || $0.isWhitespace || $0.isNewline })
        else { return false }
        let pathPart = rest.prefix { $0 != "?" }
        return !pathPart.split(separator: "/").contains { segment in
            let lower = segment.lowercased()
            return lower == "." || lower == ".." || lower.contains("%2e") || lower.contains("%2f")
        }
    }

    private static func isPort(_ text: Substring) -> Bool {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy(\.isASCII), let value = Int(text) else { return false }
        return value > 0 && value <= 65535
    }

    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return false }
        var values: [Int] = []
        for octet in octets {
            guard !octet.isEmpty, octet.count <= 3, octet.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = Int(octet), value <= 255
            else { return false }
            values.append(value)
        }
        return values[0] == 127
    }
}

/// A base URL or other setting that `LibcurlGitHubClient` refuses.
///
/// ```swift
/// do {
///     _ = try LibcurlGitHubClient(configuration: .init(apiURL: "http://github.example.com"))
/// } catch {
///     print(error)  // "apiURL uses plain http, which is only allowed for loopback hosts ..."
/// }
/// ```
public struct GitHubClientConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// `application/x-www-form-urlencoded` and path-segment encoding.
enum FormEncoding {
    /// Every byte outside RFC 3986's unreserved set is `%XX`-encoded.
    static func percentEncode(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0xF)]))
            }
        }
        return out
    }

    /// `name=value&...`, every name and value percent-encoded.
    static func encode(_ fields: [(String, String)]) -> [UInt8] {
        Array(fields.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&").utf8)
    }
}
