import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// The HTTP parts of one kind of pipeline, as ``ConnectionGuardState`` counts them.
protocol GuardedHTTPParts {
    associatedtype Request
    associatedtype Response
    static func kind(of part: Request) -> HTTPMessagePartKind
    static func isEnd(_ part: Response) -> Bool
}

/// swift-http-types parts (Hummingbird's pipeline: `broker serve`).
enum HTTPTypesParts: GuardedHTTPParts {
    static func kind(of part: HTTPRequestPart) -> HTTPMessagePartKind {
        switch part {
        case .head: .head
        case .body: .body
        case .end: .end
        }
    }
    static func isEnd(_ part: HTTPResponsePart) -> Bool { if case .end = part { true } else { false } }
}

/// NIO's HTTP/1 parts (`broker gateway`'s pipeline).
enum HTTP1Parts: GuardedHTTPParts {
    static func kind(of part: HTTPServerRequestPart) -> HTTPMessagePartKind {
        switch part {
        case .head: .head
        case .body: .body
        case .end: .end
        }
    }
    static func isEnd(_ part: HTTPServerResponsePart) -> Bool { if case .end = part { true } else { false } }
}

/// ``ConnectionGuardState`` in a pipeline of swift-http-types parts (Hummingbird's).
typealias ConnectionGuardHandler = HTTPConnectionGuardHandler<HTTPTypesParts>
/// ``ConnectionGuardState`` in a pipeline of NIO's HTTP/1 parts (`broker gateway`'s).
typealias HTTP1ConnectionGuardHandler = HTTPConnectionGuardHandler<HTTP1Parts>

/// ``ConnectionGuardState`` in an HTTP pipeline whose parts `Parts` names: it passes every part
/// on and tells the state where each request and answer begins and ends.
final class HTTPConnectionGuardHandler<Parts: GuardedHTTPParts>: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = Parts.Request
    typealias InboundOut = Parts.Request
    typealias OutboundIn = Parts.Response
    typealias OutboundOut = Parts.Response

    private let state: ConnectionGuardState

    init(registry: ConnectionRegistry, limits: ConnectionLimits, logger: Logger, reportsMetrics: Bool = true) {
        state = ConnectionGuardState(registry: registry, limits: limits, logger: logger, reportsMetrics: reportsMetrics)
    }

    func handlerAdded(context: ChannelHandlerContext) { state.handlerAdded(context: context) }
    func handlerRemoved(context: ChannelHandlerContext) { state.handlerRemoved() }

    func channelActive(context: ChannelHandlerContext) {
        state.channelActive(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.channelInactive()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        state.read(Parts.kind(of: unwrapInboundIn(data)), context: context)
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        state.channelReadComplete(context: context)
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if Parts.isEnd(unwrapOutboundIn(data)) { state.write(.end, context: context) }
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension HTTPConnectionGuardHandler: Sendable {}
