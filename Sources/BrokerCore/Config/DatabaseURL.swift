import Foundation

/// Where a shared PostgreSQL database is, parsed and checked from `database_url`:
///
///     postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE&sslrootcert=PATH]
///     postgres://USER@/DATABASE?host=/run/postgresql          (a unix socket directory)
///
/// `postgresql://` is accepted too. User and password may be percent-encoded. Its description
/// (and so every log line and error that shows it) masks the password; parse errors name what is
/// wrong, never the password.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// How the connection is protected.
    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        /// Plain TCP (loopback or a unix socket, or a network the operator trusts).
        case disable
        /// TLS, without checking the server's certificate: protects against eavesdropping only.
        case require
        /// TLS, the certificate checked against `sslrootcert` (or the system's trust store) and
        /// the host name.
        case verifyFull = "verify-full"
    }

    public var user: String
    /// `nil`: none in the URL (see `database_password_file`).
    public var password: String?
    /// A host name or address; empty with ``socketDirectory``.
    public var host: String
    public var port: Int
    public var database: String
    /// `?host=/dir`: connect to `<dir>/.s.PGSQL.<port>` instead of TCP.
    public var socketDirectory: String?
    public var tlsMode: TLSMode
    /// `?sslrootcert=PATH`: the CA certificates (PEM) that verify the server.
    public var rootCertificatePath: String?

    public static let defaultPort = 5432
    private static let mask = "********"

    /// - Throws: ``ConfigurationError`` naming the part that is wrong (never the password).
    public init(parsing text: String) throws {
        func fail(_ problem: String) -> ConfigurationError {
            ConfigurationError("database_url \(Self.masking(text)): \(problem)")
        }
        guard let components = URLComponents(string: text) else {
            throw fail("is not a URL (percent-encode special characters of the user and password)")
        }
        guard let scheme = components.scheme?.lowercased(), ["postgres", "postgresql"].contains(scheme) else {
            throw fail("the scheme must be postgres:// or postgresql://")
        }
        guard let user = components.user, !user.isEmpty else { throw fail("names no user (postgres://USER@HOST/DATABASE)") }
        self.user = user
        self.password = components.password
        self.host = components.host ?? ""
        if self.host.hasPrefix("[") && self.host.hasSuffix("]") { self.host = String(self.host.dropFirst().dropLast()) }
        self.port = components.port ?? Self.defaultPort
        guard (1...65_535).contains(self.port) else { throw fail("the port must be in 1...65535") }
        var path = components.path
        if path.hasPrefix("/") { path.removeFirst() }
        guard !path.isEmpty, !path.contains("/") else { throw fail("names no database (postgres://USER@HOST/DATABASE)") }
        self.database = path
        guard components.fragment == nil else { throw fail("must not have a fragment (#...)") }

        var mode: TLSMode?
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "sslmode":
                guard let parsed = TLSMode(rawValue: value) else {
                    throw fail("sslmode must be one of disable, require, verify-full, got \"\(value.prefix(40))\"")
                }
                mode = parsed
            case "sslrootcert":
                guard !value.isEmpty else { throw fail("sslrootcert must name a file") }
                self.rootCertificatePath = value
            case "host":
                guard value.hasPrefix("/") else { throw fail("host= must be an absolute socket directory") }
                self.socketDirectory = value
            default:
                throw fail("unknown parameter \(item.name.prefix(40)) (known: sslmode, sslrootcert, host)")
            }
        }
        guard !self.host.isEmpty || self.socketDirectory != nil else {
            throw fail("names no host (postgres://USER@HOST/DATABASE, or ?host=/socket/directory)")
        }
        // Loopback and unix sockets never leave the machine; anything else is verified unless the
        // operator says otherwise.
        let isLocal = self.socketDirectory != nil || Self.loopbackHosts.contains(self.host.lowercased())
        self.tlsMode = mode ?? (isLocal ? .disable : .verifyFull)
        if self.socketDirectory != nil, self.tlsMode != .disable {
            throw fail("a unix socket (host=) takes no TLS: use sslmode=disable")
        }
        if self.rootCertificatePath != nil, self.tlsMode != .verifyFull {
            throw fail("sslrootcert needs sslmode=verify-full")
        }
    }

    /// A unix socket or a loopback address.
    public var isLocal: Bool {
        socketDirectory != nil || Self.loopbackHosts.contains(host.lowercased())
    }

    private static let loopbackHosts: Set<String> = ["127.0.0.1", "::1", "localhost"]

    /// The URL with its password masked.
    public var description: String {
        var text = "postgres://\(user)\(password == nil ? "" : ":" + Self.mask)@"
        text += host.contains(":") ? "[\(host)]" : host
        if port != Self.defaultPort || host.isEmpty == false { text += ":\(port)" }
        text += "/\(database)?sslmode=\(tlsMode.rawValue)"
        if let rootCertificatePath { text += "&sslrootcert=\(rootCertificatePath)" }
        if let socketDirectory { text += "&host=\(socketDirectory)" }
        return text
    }

    public var debugDescription: String { self.description }

    /// `scheme://user:password@…` with the password masked, for messages about text that did
    /// not parse.
    public static func masking(_ text: String) -> String {
        guard let scheme = text.range(of: "://") else { return text.contains("@") ? mask : text }
        let rest = text[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard let at = authority.lastIndex(of: "@") else { return text }
        guard let colon = authority[..<at].firstIndex(of: ":") else { return text }
        return String(text[..<authority.index(after: colon)]) + mask + String(text[at...])
    }
}
