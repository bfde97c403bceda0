import BrokerSync
import Foundation
import Logging

/// Where audit lines go: a file (``FileAuditSink``), memory for tests (``InMemoryAuditSink``),
/// or nowhere (``DiscardingAuditSink``).
///
/// ```swift
/// let sink: any AuditSink = FileAuditSink(path: "/var/lib/broker/audit.log")
/// try await sink.append(event.jsonLine)   // returns once the line is durable
/// await sink.close()
/// ```
public protocol AuditSink: Sendable {
    /// Appends one complete line, newline included, and returns once it is stored; throws if it
    /// was not (the caller's failure mode decides what happens then).
    func append(_ line: [UInt8]) async throws
    /// Stores what is queued and releases the sink; appends after this throw.
    func close() async
}

/// Where a request came from, as the audit trail records it: built once by a route and handed to
/// the service that records the event.
///
/// ```swift
/// let origin = AuditContext(requestID: request.id, clientIP: context.clientIP)
/// try await services.audit.record(.tokenRefresh, .success, actor: "alice", context: origin)
/// ```
public struct AuditContext: Sendable, Equatable {
    public var requestID: String?
    public var clientIP: String?

    public init(requestID: String? = nil, clientIP: String? = nil) {
        self.requestID = requestID
        self.clientIP = clientIP
    }

    /// No request: an operator's CLI command, a background job.
    public static let none = AuditContext()
}

/// What services hold to write the audit trail: one call per event, after which the event is
/// durable, or the configured failure mode has decided.
///
/// With ``AuditFailureMode/failClosed`` an event that cannot be written throws
/// `BrokerError(.auditUnavailable)`, and the caller must not go on with the action; with
/// ``AuditFailureMode/failOpen`` the loss is reported in the server log and the call returns.
/// Either way the server log gets one error line naming the action and the cause, never a field
/// that might hold a secret.
///
/// ```swift
/// let audit = AuditTrail.file(path: config.auditLogPath, failureMode: config.auditFailureMode, logger: logger)
/// try await audit.record(
///     .membershipApprove, .success, actor: "admin", organization: "org1", target: "alice",
///     context: AuditContext(requestID: "r-1", clientIP: "192.0.2.7"))
/// await audit.close()
/// ```
public struct AuditTrail: Sendable {
    public let failureMode: AuditFailureMode
    private let sink: any AuditSink
    private let clock: any WallClock
    private let logger: Logger

    public init(
        sink: any AuditSink, failureMode: AuditFailureMode, clock: any WallClock = SystemWallClock(),
        logger: Logger = Logger(label: "broker.audit")
    ) {
        self.sink = sink
        self.failureMode = failureMode
        self.clock = clock
        self.logger = logger
    }

    /// A trail appending to the file at `path` (see ``FileAuditSink``).
    public static func file(
        path: String, failureMode: AuditFailureMode, clock: any WallClock = SystemWallClock(),
        logger: Logger = Logger(label: "broker.audit")
    ) -> AuditTrail {
        AuditTrail(sink: FileAuditSink(path: path), failureMode: failureMode, clock: clock, logger: logger)
    }

    /// A trail that records nothing and never fails, for code paths that have no audit log.
    public static let discarding = AuditTrail(sink: DiscardingAuditSink(), failureMode: .failOpen)

    /// Records that `actor` did `action` now, with the outcome; see ``record(_:)``.
    public func record(
        _ action: AuditAction, _ outcome: AuditOutcome, actor: String?, organization: String? = nil,
        session: String? = nil, target: String? = nil, reason: String? = nil, context: AuditContext = .none
    ) async throws {
        try await record(
            AuditEvent(
                time: clock.now(), action: action, outcome: outcome, actor: actor, organization: organization,
                session: session, target: target, requestID: context.requestID, clientIP: context.clientIP, reason: reason))
    }

    /// Writes `event` and returns once it is durable.
    ///
    /// - Throws: `BrokerError(.auditUnavailable)` if it could not be written and the failure mode
    ///   is ``AuditFailureMode/failClosed``; nothing otherwise.
    public func record(_ event: AuditEvent) async throws {
        do {
            try await sink.append(event.jsonLine)
        } catch {
            // The actor and target stay out: a login attempt's "username" is sometimes a
            // password typed into the wrong field, and this log is read more widely.
            var metadata: Logger.Metadata = [
                "audit_action": "\(event.action.rawValue)", "audit_outcome": "\(event.outcome.rawValue)",
                "error": "\(error)",
            ]
            if let requestID = event.requestID { metadata["request_id"] = "\(requestID)" }
            switch failureMode {
            case .failClosed:
                logger.error("audit line not written; the action was refused (audit_failure_mode: closed)", metadata: metadata)
                throw BrokerError(.auditUnavailable, "the audit log cannot be written; the action was refused")
            case .failOpen:
                logger.error("audit line lost; the action went ahead (audit_failure_mode: open)", metadata: metadata)
            }
        }
    }

    /// Stores what is queued and closes the sink; call once, at shutdown.
    public func close() async {
        await sink.close()
    }
}

/// Keeps lines in memory, for tests; can be told to fail, as a full disk would.
///
/// ```swift
/// let sink = InMemoryAuditSink()
/// let audit = AuditTrail(sink: sink, failureMode: .failClosed)
/// try await audit.record(.userCreate, .success, actor: "admin", target: "alice")
/// sink.events.map(\.action)   // [.userCreate]
/// sink.setFailing(true)       // the next record throws audit_unavailable
/// ```
public final class InMemoryAuditSink: AuditSink {
    /// What a failing sink throws.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String { "the in-memory audit sink was told to fail" }
    }

    private struct State {
        var lines: [[UInt8]] = []
        var failing = false
    }

    private let state = Locked(State())

    public init() {}

    public func append(_ line: [UInt8]) async throws {
        try state.withLock { state in
            guard !state.failing else { throw Failure() }
            state.lines.append(line)
        }
    }

    public func close() async {}

    /// From now on, appends throw ``Failure`` (true) or succeed again (false).
    public func setFailing(_ failing: Bool) {
        state.withLock { $0.failing = failing }
    }

    /// Every line appended, newline included, in order.
    public var lines: [[UInt8]] { state.withLock { $0.lines } }

    /// The lines read back as events.
    public var events: [AuditEvent] { lines.compactMap { AuditEvent(jsonLine: $0) } }
}

/// Accepts every line and keeps none.
///
/// ```swift
/// let audit = AuditTrail(sink: DiscardingAuditSink(), failureMode: .failOpen)   // or AuditTrail.discarding
/// ```
public struct DiscardingAuditSink: AuditSink {
    public init() {}
    public func append(_ line: [UInt8]) async throws {}
    public func close() async {}
}
