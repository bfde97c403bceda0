import BrokerConnections
import BrokerSync
import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// `broker gateway`'s HTTP/1.1 server: a plain SwiftNIO server whose handler answers on the
/// event loop (`ForwardAuthHandler`), with the connection limits of `broker serve`
/// (`ConnectionGuard`).
///
/// Why not Hummingbird, as before: Hummingbird hands each request from the event loop to a
/// Swift task and back, and converts it to and from swift-http-types; for a decision that is a
/// hash lookup on a cache hit, that was most of the cost (BENCHMARKS.md).
///
/// Each connection's pipeline: NIO's HTTP/1.1 decoder (80 KB per header field and for all of
/// them, 1,000 fields: the limits the gateway had) and encoder, NIO's pipelining handler (one
/// request at a time, answers in order, and the quiescing of graceful shutdown), the guard's
/// handler (timeouts, the caps), `ForwardAuthHandler`.
///
/// A `Service`: on graceful shutdown (SIGTERM, SIGINT under a `ServiceGroup`) or cancellation
/// it stops accepting, closes idle connections, lets each request in progress get its answer
/// (with `Connection: close`) and returns once every connection is closed.
///
/// ```swift
/// let server = GatewayServer(
///     responder: ForwardAuthResponder(validator: validator, cluster: "cluster1", logger: logger),
///     host: "127.0.0.1", port: 9000, limits: ConnectionLimits(), logger: logger)
/// try await ServiceGroup(configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm], logger: logger)).run()
/// ```
public struct GatewayServer: Service {
    public let host: String
    public let port: Int
    let responder: ForwardAuthResponder
    let connections: ConnectionGuard
    let logger: Logger
    /// Called once the server listens, with its channel: `localAddress` has the port when 0
    /// was asked for.
    public var onServerRunning: @Sendable (any Channel) async -> Void

    /// Hummingbird's limits, which the gateway has always had; past them, a bare 400.
    static let decoderLimits: NIOHTTPDecoderLimitConfiguration = {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 80 * 1024
        limits.maxHeaderListSize = 80 * 1024
        limits.maxHeaderFieldCount = 1000
        return limits
    }()

    /// `ForwardAuthHandler` sets `Content-Length` on every answer but one to `CONNECT`, so the
    /// encoder need not look for framing headers; looking, it copied each answer's headers.
    static let encoderConfiguration: HTTPResponseEncoder.Configuration = {
        var configuration = HTTPResponseEncoder.Configuration()
        configuration.automaticallySetFramingHeaders = false
        return configuration
    }()

    /// Pending connections the kernel queues before they are accepted.
    static let backlog: Int32 = 256

    init(
        responder: ForwardAuthResponder, host: String, port: Int, limits: ConnectionLimits, logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) {
        self.responder = responder
        self.host = host
        self.port = port
        connections = ConnectionGuard(limits: limits, logger: logger)
        self.logger = logger
        self.onServerRunning = onServerRunning
    }

    public func run() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let quiescing = ServerQuiescingHelper(group: group)
        let channel = try await bootstrap(group, quiescing).bind(host: host, port: port).get()
        logger.info("Server started and listening on \(host):\(channel.localAddress?.port ?? port)")

        let closed = channel.eventLoop.makePromise(of: Void.self)
        let stopping = Locked(false)
        // Once, whether shutdown or cancellation asks first: the promise is completed once.
        let stop: @Sendable () -> Void = {
            let first = stopping.withLock { stopped in
                let first = !stopped
                stopped = true
                return first
            }
            if first { quiescing.initiateShutdown(promise: closed) }
        }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                await onServerRunning(channel)
                try await closed.futureResult.get()
            } onGracefulShutdown: {
                stop()
            }
        } onCancel: {
            stop()
        }
    }

    private func bootstrap(_ group: any EventLoopGroup, _ quiescing: ServerQuiescingHelper) -> ServerBootstrap {
        let responder = responder
        let connections = connections
        let logger = logger
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Self.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            // A client that half-closes after its request still gets the answer.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    // No outbound header validation: every header value is a constant or an
                    // identity `IdentityHeaders` admits (visible characters and spaces only).
                    // No error handling: `ForwardAuthHandler` answers parse errors itself.
                    try pipeline.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: false, withOutboundHeaderValidation: false,
                        withEncoderConfiguration: Self.encoderConfiguration, withDecoderLimitConfiguration: Self.decoderLimits)
                    try pipeline.addHandler(connections.http1Handler())
                    try pipeline.addHandler(ForwardAuthHandler(responder: responder, logger: logger))
                }
            }
    }
}
