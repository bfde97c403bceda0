import Logging
import NIOCore

/// One connection's side of ``ConnectionGuard``: admits it into the registry (or closes it at
/// once), keeps the registry told what it is doing, and closes it when a deadline passes.
///
/// Sits between the HTTP/1.1 codec and the application, so it sees whole request heads, body
/// parts and ends, and the answer's parts. A socket read that decoded nothing still reaches it
/// (`channelReadComplete`): that is how it sees the first bytes of a request after a keep-alive
/// pause. Every deadline is absolute: a client trickling bytes does not push it back.
///
/// It reads of a part only which part it is, so it serves pipelines of either library's types
/// through a handler of each: ``ConnectionGuardHandler`` (swift-http-types parts: Hummingbird,
/// `broker serve`) and ``HTTP1ConnectionGuardHandler`` (NIO's HTTP/1 parts: `broker gateway`,
/// whose hot path a conversion per request would cost). Those two are concrete classes: a
/// generic handler runs unspecialized, with a metadata lookup and a dynamic cast per part.
final class ConnectionGuardState {
    enum Deadline {
        case header, body, idle

        var closeReason: ConnectionMetrics.CloseReason {
            switch self {
            case .header: .headerTimeout
            case .body: .bodyTimeout
            case .idle: .idleTimeout
            }
        }
    }

    private let registry: ConnectionRegistry
    private let limits: ConnectionLimits
    private let logger: Logger
    private let reportsMetrics: Bool
    private var id: ConnectionTable<any Channel>.ID?
    private var wasRefused = false
    /// Requests whose head has been read and whose answer has not been written in full.
    private var requestsInFlight = 0
    private var isReadingRequest = false
    /// Whether a request part arrived since the last `channelReadComplete`.
    private var readParts = false
    /// The deadline in force, if any.
    private var pending: (deadline: Deadline, at: NIODeadline)?
    /// The one check scheduled on the event loop. Arming a deadline later than it leaves it in
    /// place: it schedules itself again for the deadline in force when it runs. So a busy
    /// connection schedules and cancels nothing per request (a new head, its end and the answer
    /// each move the deadline); only an earlier deadline replaces the check.
    private var check: (at: NIODeadline, task: Scheduled<Void>)?

    init(registry: ConnectionRegistry, limits: ConnectionLimits, logger: Logger, reportsMetrics: Bool = true) {
        self.registry = registry
        self.limits = limits
        self.logger = logger
        self.reportsMetrics = reportsMetrics
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context) }
    }

    func handlerRemoved() {
        release()
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context)
    }

    func channelInactive() {
        release()
    }

    /// A request part has passed.
    func read(_ part: HTTPMessagePartKind, context: ChannelHandlerContext) {
        readParts = true
        switch part {
        case .head:
            requestsInFlight += 1
            isReadingRequest = true
            let now = context.eventLoop.now
            arm(.body, context, from: now)
            report(.readingBody(since: now))
        case .body:
            break
        case .end:
            isReadingRequest = false
            if requestsInFlight > 0 {
                disarm()
                report(.answering)
            } else {
                // Answered before its body was read (an early error): nothing more is coming.
                awaitNextRequest(context)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Bytes after a keep-alive pause that make no part yet: a request has begun, and has the
        // header timeout to finish its head. A read whose request was answered before this call
        // (an application that answers on the event loop) left the idle deadline of that answer,
        // which stays.
        if pending?.deadline == .idle, !readParts { arm(.header, context, from: context.eventLoop.now) }
        readParts = false
    }

    /// A response part is being written.
    func write(_ part: HTTPMessagePartKind, context: ChannelHandlerContext) {
        if case .end = part {
            requestsInFlight = max(0, requestsInFlight - 1)
            if requestsInFlight == 0, !isReadingRequest { awaitNextRequest(context) }
        }
    }

    // MARK: -

    private func admit(_ context: ChannelHandlerContext) {
        guard id == nil, !wasRefused else { return }
        let now = context.eventLoop.now
        switch registry.admit(context.channel, at: now) {
        case .admitted(let id, let evicted):
            self.id = id
            if !evicted.isEmpty {
                if reportsMetrics { ConnectionMetrics.closed(.evicted, count: evicted.count) }
                logger.debug("connection cap reached; closed the longest-waiting connections", metadata: ["closed": "\(evicted.count)"])
            }
            if reportsMetrics { ConnectionMetrics.open(registry.count) }
            arm(.header, context, from: now)
        case .refused(let refusal):
            wasRefused = true
            if reportsMetrics { ConnectionMetrics.refused(refusal) }
            logger.debug("connection refused", metadata: ["reason": "\(refusal.rawValue)"])
            context.close(promise: nil)
        }
    }

    private func release() {
        disarm()
        check?.task.cancel()
        check = nil
        guard let id else { return }
        self.id = nil
        registry.forget(id)
        if reportsMetrics { ConnectionMetrics.open(registry.count) }
    }

    private func awaitNextRequest(_ context: ChannelHandlerContext) {
        let now = context.eventLoop.now
        arm(.idle, context, from: now)
        report(.waiting(since: now))
    }

    private func report(_ activity: ConnectionTable<any Channel>.Activity) {
        if let id { registry.update(id, to: activity) }
    }

    private func arm(_ deadline: Deadline, _ context: ChannelHandlerContext, from now: NIODeadline) {
        guard id != nil else { return }
        let timeout: Duration =
            switch deadline {
            case .header: limits.headerTimeout
            case .body: limits.bodyTimeout
            case .idle: limits.idleTimeout
            }
        let at = now + TimeAmount(timeout)
        pending = (deadline, at)
        if let check, check.at <= at { return }
        check?.task.cancel()
        scheduleCheck(at: at, context)
    }

    private func disarm() {
        pending = nil
    }

    private func scheduleCheck(at: NIODeadline, _ context: ChannelHandlerContext) {
        let task = context.eventLoop.assumeIsolated().scheduleTask(deadline: at) {
            self.checkDeadline(context)
        }
        check = (at, task)
    }

    /// Closes the connection if the deadline in force has passed; else looks again then.
    private func checkDeadline(_ context: ChannelHandlerContext) {
        check = nil
        guard let pending else { return }
        if pending.at <= context.eventLoop.now {
            expire(pending.deadline, context)
        } else {
            scheduleCheck(at: pending.at, context)
        }
    }

    private func expire(_ deadline: Deadline, _ context: ChannelHandlerContext) {
        pending = nil
        if reportsMetrics { ConnectionMetrics.closed(deadline.closeReason) }
        logger.debug("connection closed", metadata: ["reason": "\(deadline.closeReason.rawValue)"])
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension ConnectionGuardState: Sendable {}

/// Which part of an HTTP message a part is: all ``ConnectionGuardState`` reads of it.
enum HTTPMessagePartKind {
    case head, body, end
}
