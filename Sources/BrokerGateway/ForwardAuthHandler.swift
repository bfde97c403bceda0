import Logging
import NIOCore
import NIOHTTP1

/// One connection of `broker gateway`: reads each request's head, drops its body, and writes
/// the forward-auth answer (`ForwardAuthResponder`).
///
/// The answer is written on the event loop, in the same turn as the request's end, whenever
/// the responder can give it at once: no token, a reserved header, a token in the cache of
/// verified tokens. Only a token whose signature must be checked goes to a task, and its answer
/// comes back to the event loop to be written. There is no hop per request, and the body of a
/// request is never waited for by anything but the decoder.
///
/// Last in the pipeline, after NIO's HTTP/1.1 decoder and encoder, its pipelining handler and
/// the connection guard. The pipelining handler passes on a connection's next request only
/// once this one's answer is written, so answers keep the order of pipelined requests even
/// when one goes to a task and the next does not.
///
/// What a connection sees, as `broker gateway` has always answered it:
/// - Every answer has `Content-Length`, `Date` and `Server: broker-gateway`; a `HEAD` answer
///   has the headers of the `GET` answer and no body; an answer to `CONNECT` has neither body
///   nor `Content-Length` (as NIO's encoder framed it when it set the framing headers).
/// - The body is read and dropped before deciding: a message whose framing is broken gets one
///   answer, 400 `malformed request`, instead of a decision followed by a 400 of the server.
/// - A head that cannot be read at all (not HTTP, over the decoder's limits) gets a bare 400
///   with `Connection: close`.
/// - After an answer that ends the connection (`Connection: close`, HTTP/1.0 without
///   keep-alive, broken framing, or a client that closed its side) the gateway closes its side
///   once the answer is written, and the client reads the answer to its end.
final class ForwardAuthHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// A request's head is in; its body is being read and dropped.
        case reading(HTTPRequestHead)
        /// The request is read; its answer is being worked out in a task.
        case answering
        /// The connection is closing: nothing more is read or written.
        case closed
    }

    /// What the writing of an answer needs to know of its request.
    private struct Request {
        /// `HEAD`: the answer's headers, `Content-Length` included, without its body.
        var isHead: Bool
        /// `CONNECT`: neither body nor `Content-Length`, which a 2xx answer to it must not have
        /// (RFC 9110 section 9.3.6).
        var isConnect: Bool
        var keepAlive: Bool

        init(_ head: HTTPRequestHead, keepAlive: Bool) {
            isHead = head.method == .HEAD
            isConnect = head.method == .CONNECT
            self.keepAlive = keepAlive
        }
    }

    private let responder: ForwardAuthResponder
    private let logger: Logger
    private var state = State.idle
    /// The client has closed its side: close ours once the answer in progress is written.
    private var inputClosed = false
    private var date = HTTPDate()

    static let serverName = "broker-gateway"

    init(responder: ForwardAuthResponder, logger: Logger) {
        self.responder = responder
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .idle = state else { return }
            state = .reading(head)
        case .body:
            // The decision reads only headers: the body is dropped as it arrives.
            break
        case .end:
            guard case .reading(let head) = state else { return }
            answer(head, context: context)
        }
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let request = Request(head, keepAlive: head.isKeepAlive)
        switch responder.decide(head.headers) {
        case .answer(let answer):
            write(answer, for: request, context: context)
        case .validate(let token):
            // A signature check: off the event loop, as it may take a millisecond, or a JWKS fetch.
            state = .answering
            let responder = self.responder
            context.eventLoop.makeFutureWithTask { await responder.answer(validating: token) }
                .assumeIsolated().whenSuccess { answer in
                    // The connection may have closed meanwhile: then nobody is left to answer.
                    guard case .answering = self.state else { return }
                    self.write(answer, for: request, context: context)
                }
        }
    }

    private func write(_ answer: ForwardAuthAnswer, for request: Request, context: ChannelHandlerContext) {
        // The framing headers are this handler's to set (the encoder's automatic framing is off:
        // it copied every answer's headers to look for them).
        var headers = answer.headers
        if !request.isConnect { headers.add(name: "Content-Length", value: String(answer.body.readableBytes)) }
        headers.add(name: "Date", value: date.now())
        headers.add(name: "Server", value: Self.serverName)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: answer.status, headers: headers))), promise: nil)
        if !request.isHead, !request.isConnect, answer.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(answer.body))), promise: nil)
        }
        if request.keepAlive, !inputClosed {
            state = .idle
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            state = .closed
            writeEndThenCloseOutput(context)
        }
    }

    /// Ends the answer, then half-closes once it is written: the client reads it to its end
    /// and closes; what it sent after it is never read. A full close here could reset the
    /// connection over unread bytes and lose the answer.
    private func writeEndThenCloseOutput(_ context: ChannelHandlerContext) {
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            channel.close(mode: .output, promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch (state, error) {
        case (.closed, _):
            // Closing already, for an earlier reason: the decoder reports what it gets meanwhile.
            return
        case (.reading(let head), let error as HTTPParserError):
            logger.debug("malformed request", metadata: ["error": "\(error)"])
            write(.malformed, for: Request(head, keepAlive: false), context: context)
        case (.idle, is HTTPParserError):
            // No request to answer for: the bare 400 an HTTP server sends, then close.
            logger.debug("HTTP parse error, closing connection")
            state = .closed
            let head = HTTPResponseHead(version: .http1_1, status: .badRequest, headers: ["Connection": "close", "Content-Length": "0"])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            writeEndThenCloseOutput(context)
        case (.reading, _):
            logger.debug("the client closed the connection before its request was complete")
            state = .closed
            context.close(promise: nil)
        case (.idle, _), (.answering, _):
            // The connection failed (a reset, a write to a closed socket): nothing can be sent on it.
            logger.trace("Failed to read/write to Channel. Error: \(error)")
            state = .closed
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            switch state {
            case .idle:
                // Nothing more will come, and nothing is left to answer.
                state = .closed
                context.close(promise: nil)
            case .answering:
                // Closed once the answer is written (`write`).
                break
            case .reading, .closed:
                // A request cut short: the decoder reports it as broken framing (`errorCaught`).
                break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .reading = state {
            logger.debug("the client closed the connection before its request was complete")
        }
        state = .closed
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        state = .closed
    }
}

@available(*, unavailable)
extension ForwardAuthHandler: Sendable {}
