import HummingbirdCore
import Logging
import Metrics
import NIOCore

/// The connection limits of one HTTP/1.1 listener (``ConnectionLimits``): as a Hummingbird
/// server builder for `broker serve`, as a channel handler for `broker gateway`'s plain NIO
/// pipeline.
///
/// ```swift
/// let guarded = ConnectionGuard(limits: ConnectionLimits(), logger: logger)
/// let app = Application(router: router, server: guarded.http1(), configuration: configuration)
/// // or, after `configureHTTPServerPipeline` in a NIO child channel initializer:
/// try channel.pipeline.syncOperations.addHandler(guarded.http1Handler())
/// ```
public struct ConnectionGuard: Sendable {
    public let limits: ConnectionLimits
    public let registry: ConnectionRegistry
    private let logger: Logger
    private let reportsMetrics: Bool

    /// - Parameters:
    ///   - reportsMetrics: whether this listener's connections are the ones ``ConnectionMetrics``
    ///     counts (one listener per process: the public one).
    ///   - isExemptFromAddressCap: peers (by IP address text) limited only by the total: reverse
    ///     proxies that speak for many clients.
    public init(
        limits: ConnectionLimits, logger: Logger, reportsMetrics: Bool = true,
        isExemptFromAddressCap: @escaping @Sendable (String) -> Bool = { _ in false }
    ) {
        self.limits = limits
        self.registry = ConnectionRegistry(limits: limits, isExemptFromAddressCap: isExemptFromAddressCap)
        self.logger = logger
        self.reportsMetrics = reportsMetrics
    }

    /// An HTTP/1.1 server with `configuration`'s handlers, plus this guard in every connection.
    /// Hummingbird's own idle timeout is turned off: the guard's deadlines replace it.
    public func http1(_ configuration: HTTP1Channel.Configuration = .init()) -> HTTPServerBuilder {
        var configuration = configuration
        let others = configuration.additionalChannelHandlers
        let registry = registry
        let limits = limits
        let logger = logger
        let reportsMetrics = reportsMetrics
        configuration.additionalChannelHandlers = {
            [ConnectionGuardHandler(registry: registry, limits: limits, logger: logger, reportsMetrics: reportsMetrics)] + others()
        }
        configuration.idleTimeout = nil
        return .http1(configuration: configuration)
    }

    /// This guard's handler for one connection of a plain NIO HTTP/1.1 pipeline
    /// (`HTTPServerRequestPart`s in, `HTTPServerResponsePart`s out): add it after
    /// `configureHTTPServerPipeline`'s handlers, before the application's. A new one per
    /// connection.
    public func http1Handler() -> any ChannelHandler {
        HTTP1ConnectionGuardHandler(registry: registry, limits: limits, logger: logger, reportsMetrics: reportsMetrics)
    }
}

/// The connection metrics (prefix `broker_`, like every metric of the broker; listed in
/// docs/operations.md). Labels take only the closed sets below.
public enum ConnectionMetrics {
    public enum Name {
        public static let open = "broker_connections_open"
        public static let refused = "broker_connections_refused_total"
        public static let closed = "broker_connections_closed_total"
    }

    /// Why the server closed a connection (label `reason`).
    public enum CloseReason: String, Sendable, CaseIterable {
        /// The head of a request was not complete within the header timeout.
        case headerTimeout = "header_timeout"
        /// The body of a request was not complete within the body timeout.
        case bodyTimeout = "body_timeout"
        /// No new request within the idle timeout.
        case idleTimeout = "idle_timeout"
        /// Closed at the cap to make room for a new connection: it had waited longest.
        case evicted
    }

    /// Creates every connection series at zero (see `BrokerMetrics.registerEverySeries()`), so a
    /// scrape shows them before the first refusal or timeout.
    public static func registerEverySeries() {
        open(0)
        for refusal in ConnectionTable<any Channel>.Refusal.allCases {
            _ = Counter(label: Name.refused, dimensions: [("reason", refusal.rawValue)])
        }
        for reason in CloseReason.allCases { _ = Counter(label: Name.closed, dimensions: [("reason", reason.rawValue)]) }
    }

    static func open(_ count: Int) {
        Gauge(label: Name.open).record(count)
    }

    static func refused(_ refusal: ConnectionTable<any Channel>.Refusal) {
        Counter(label: Name.refused, dimensions: [("reason", refusal.rawValue)]).increment()
    }

    static func closed(_ reason: CloseReason, count: Int = 1) {
        Counter(label: Name.closed, dimensions: [("reason", reason.rawValue)]).increment(by: count)
    }
}
