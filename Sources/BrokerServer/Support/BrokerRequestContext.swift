import Hummingbird
import Logging
import NIOCore

/// The context of every broker request: Hummingbird's core context plus the socket's peer
/// address, from which the client IP is derived (brute-force throttling, audit lines).
public struct BrokerRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connected peer; `nil` when the transport has none (in-process tests).
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

extension RequestContext {
    /// The id of this request, as its log lines carry it and the `X-Request-ID` response header
    /// returns it (see `RequestIDMiddleware`); for audit lines and error reports.
    public var requestID: String {
        logger[metadataKey: RequestIDMiddleware<Self>.metadataKey]?.description ?? id
    }
}
