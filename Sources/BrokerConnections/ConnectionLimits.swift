#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How long a client may take over each part of an HTTP/1.1 exchange, and how many connections
/// the server keeps open, in total and per client address. Shared by `broker serve` and
/// `broker gateway` (see ``ConnectionGuard``).
///
/// Every connection costs a file descriptor. Without these limits a client that opens
/// connections and sends nothing (or half a request) holds them until it lets go, and once the
/// process runs out of descriptors it cannot accept anyone, `/healthz` included.
///
/// ```swift
/// var limits = ConnectionLimits()                 // defaults from RLIMIT_NOFILE
/// limits.headerTimeout = .seconds(5)
/// let server = ConnectionGuard(limits: limits, logger: logger).http1()
/// ```
public struct ConnectionLimits: Sendable, Equatable {
    /// From the moment a request may start (a new connection, or the first byte after a
    /// keep-alive pause) until its head is complete. Absolute: trickling bytes does not extend it.
    public var headerTimeout: Duration = .seconds(10)
    /// From the end of a request's head until its body is complete. Absolute.
    public var bodyTimeout: Duration = .seconds(30)
    /// How long a connection may wait, after its last answer, for the next request.
    public var idleTimeout: Duration = .seconds(60)
    /// Connections open at once; at the cap, a new connection closes the one that has waited
    /// longest for a request (else it is refused).
    public var maximumConnections: Int
    /// Connections open at once from one peer address; past it, a new one is closed at once.
    public var maximumConnectionsPerAddress: Int

    /// Defaults derived from the process's descriptor limit (see ``defaultMaximumConnections(descriptorLimit:)``).
    public init(descriptorLimit: Int = Self.descriptorLimit) {
        maximumConnections = Self.defaultMaximumConnections(descriptorLimit: descriptorLimit)
        maximumConnectionsPerAddress = Self.defaultMaximumConnectionsPerAddress(maximumConnections: maximumConnections)
    }

    /// The most connections the default allows, whatever the descriptor limit: each open
    /// connection also costs memory (buffers, a task), and a server this busy wants a proxy in
    /// front of it anyway.
    public static let defaultConnectionCeiling = 10_000

    /// Leaves `max(64, limit / 8)` descriptors for everything else the process opens (the
    /// database and its journal, the audit log, key files, GitHub and JWKS fetches, the
    /// event loops' own descriptors), and never less than half the limit for connections.
    public static func defaultMaximumConnections(descriptorLimit: Int) -> Int {
        let reserve = max(64, descriptorLimit / 8)
        let connections = max(descriptorLimit / 2, descriptorLimit - reserve)
        return max(1, min(defaultConnectionCeiling, connections))
    }

    /// A quarter of the total: one address cannot take the server, and it takes at least four
    /// addresses to fill it, which the eviction of idle connections then handles.
    public static func defaultMaximumConnectionsPerAddress(maximumConnections: Int) -> Int {
        max(1, maximumConnections / 4)
    }

    /// The process's soft `RLIMIT_NOFILE` (1024 when it cannot be read; unlimited counts as `Int.max`).
    public static var descriptorLimit: Int {
        var limit = rlimit()
        #if canImport(Glibc)
        let status = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        #else
        let status = getrlimit(RLIMIT_NOFILE, &limit)
        #endif
        guard status == 0 else { return 1024 }
        return Int(min(limit.rlim_cur, rlim_t(Int.max)))
    }

    /// The first rule these settings break, as a sentence naming the setting, or nil.
    public var problem: String? {
        if headerTimeout <= .zero { return "the header timeout must be positive" }
        if bodyTimeout <= .zero { return "the body timeout must be positive" }
        if idleTimeout <= .zero { return "the idle timeout must be positive" }
        if maximumConnections < 1 { return "the connection cap must be at least 1" }
        if maximumConnectionsPerAddress < 1 { return "the per-address connection cap must be at least 1" }
        if maximumConnectionsPerAddress > maximumConnections {
            return "the per-address connection cap (\(maximumConnectionsPerAddress)) must not exceed the total (\(maximumConnections))"
        }
        return nil
    }
}
