import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// ``ConnectionGuardState`` in a pipeline of swift-http-types parts (Hummingbird's).
final class ConnectionGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

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
        let part: HTTPMessagePartKind =
            switch unwrapInboundIn(data) {
            case .head: .head
            case .body: .body
            case .end: .end
            }
        state.read(part, context: context)
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        state.channelReadComplete(context: context)
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { state.write(.end, context: context) }
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension ConnectionGuardHandler: Sendable {}

/// ``ConnectionGuardState`` in a pipeline of NIO's HTTP/1 parts (`broker gateway`'s).
final class HTTP1ConnectionGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

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
        let part: HTTPMessagePartKind =
            switch unwrapInboundIn(data) {
            case .head: .head
            case .body: .body
            case .end: .end
            }
        state.read(part, context: context)
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        state.channelReadComplete(context: context)
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { state.write(.end, context: context) }
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension HTTP1ConnectionGuardHandler: Sendable {}
