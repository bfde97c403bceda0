import Hummingbird
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
