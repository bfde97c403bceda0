import BrokerCrypto
import Foundation

/// How an audited attempt ended.
public enum AuditOutcome: String, Sendable, Equatable, CaseIterable {
    /// The action happened.
    case success
    /// The action was attempted and failed: wrong password, unknown user, expired token.
    case failure
    /// The caller was identified but is not allowed to do this: not a member, not an admin,
    /// throttled, a reused refresh token.
    case denied
}

/// One line of the audit trail: who did what, to what, from where, and how it ended.
///
/// Fields are plain text, never secrets: a token is named by its `jti` or by
/// ``tokenReference(_:)``, a password never appears. Every field is cleaned on the way in
/// (see ``init(time:action:outcome:actor:organization:session:target:requestID:clientIP:reason:)``), so
/// a hostile username cannot start a second line or hide text from a terminal, and `time` is
/// kept to the millisecond the line records.
///
/// ```swift
/// let event = AuditEvent(
///     time: clock.now(), action: .loginPassword, outcome: .failure, actor: "alice",
///     organization: "org1", requestID: "r-42", clientIP: "192.0.2.7", reason: "invalid_credentials")
/// String(decoding: event.jsonLine, as: UTF8.self)
/// // {"time":"2026-11-29T12:00:00.123Z","request_id":"r-42","actor":"alice","action":"login.password",
/// //  "org":"org1","session":null,"target":null,"outcome":"failure","client_ip":"192.0.2.7","reason":"invalid_credentials"}\n
/// ```
public struct AuditEvent: Sendable, Equatable {
    public let time: Date
    /// The HTTP request's id, to find the matching lines in the server log.
    public let requestID: String?
    /// Who acted: the authenticated user, the username a login attempt named, or an operator.
    public let actor: String?
    public let action: AuditAction
    public let organization: String?
    /// The session the line is about: its id (`sid`), random and safe to log, never a token.
    public let session: String?
    /// What was acted on: a user, a membership, a key id, a token's `jti` or reference.
    public let target: String?
    public let outcome: AuditOutcome
    public let clientIP: String?
    /// Why, for failures and denials: usually the error code answered (`invalid_credentials`).
    public let reason: String?

    /// The longest a field may be, in characters; longer values are cut and end in "…". A login
    /// attempt's username is whatever the client sent, and one line must stay one small write.
    public static let maximumFieldLength = 256

    /// Builds an event; every text field is cleaned:
    /// control characters (C0, DEL, C1), Unicode line and paragraph separators and bidirectional
    /// overrides become U+FFFD, so they can be seen rather than obeyed; values longer than
    /// ``maximumFieldLength`` are cut. Replacing rather than deleting keeps a login attempt as
    /// `"ali\nce"` from being recorded as `alice`.
    public init(
        time: Date, action: AuditAction, outcome: AuditOutcome, actor: String? = nil, organization: String? = nil,
        session: String? = nil, target: String? = nil, requestID: String? = nil, clientIP: String? = nil,
        reason: String? = nil
    ) {
        self.time = AuditTimestamp.truncated(time)
        self.action = AuditAction(rawValue: Self.clean(action.rawValue))
        self.outcome = outcome
        self.actor = actor.map(Self.clean)
        self.organization = organization.map(Self.clean)
        self.session = session.map(Self.clean)
        self.target = target.map(Self.clean)
        self.requestID = requestID.map(Self.clean)
        self.clientIP = clientIP.map(Self.clean)
        self.reason = reason.map(Self.clean)
    }

    /// How a line names a token it must not contain: `sha256:` and the first 16 hex digits of
    /// the token's SHA-256. Enough to match two lines about one token, useless to replay it.
    /// Prefer the token's `jti` where it has one.
    public static func tokenReference(_ token: String) -> String {
        "sha256:" + Digest.sha256Hex(token).prefix(16)
    }

    /// The event as one JSON line, newline included, keys in the documented order, absent
    /// values as `null`.
    public var jsonLine: [UInt8] {
        var json = JSONWriter(capacity: 384)
        json.beginObject()
        json.field("time", AuditTimestamp.format(time))
        Self.write("request_id", requestID, to: &json)
        Self.write("actor", actor, to: &json)
        json.field("action", action.rawValue)
        Self.write("org", organization, to: &json)
        Self.write("session", session, to: &json)
        Self.write("target", target, to: &json)
        json.field("outcome", outcome.rawValue)
        Self.write("client_ip", clientIP, to: &json)
        Self.write("reason", reason, to: &json)
        json.endObject()
        var line = json.bytes
        line.append(UInt8(ascii: "\n"))
        return line
    }

    /// Reads back a line written by ``jsonLine`` (with or without its newline); nil for anything
    /// else, such as the torn last line a crash mid-write leaves.
    public init?(jsonLine: some Collection<UInt8>) {
        var bytes = Array(jsonLine)
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        guard let value = try? JSONParser.parse(bytes, maxDepth: 1), value.object != nil,
            let timeText = value["time"]?.string, let time = AuditTimestamp.parse(timeText),
            let action = value["action"]?.string,
            let outcomeText = value["outcome"]?.string, let outcome = AuditOutcome(rawValue: outcomeText)
        else { return nil }
        func text(_ name: String) -> String?? {
            switch value[name] {
            case .none, .some(.null): return .some(nil)
            case .some(.string(let text)): return .some(text)
            default: return .none
            }
        }
        // `session` is missing from lines written before it existed.
        guard let requestID = text("request_id"), let actor = text("actor"), let organization = text("org"),
            let session = text("session"), let target = text("target"), let clientIP = text("client_ip"),
            let reason = text("reason")
        else { return nil }
        self.init(
            time: time, action: AuditAction(rawValue: action), outcome: outcome, actor: actor,
            organization: organization, session: session, target: target, requestID: requestID, clientIP: clientIP,
            reason: reason)
    }

    private static func write(_ name: String, _ value: String?, to json: inout JSONWriter) {
        json.key(name)
        if let value { json.string(value) } else { json.null() }
    }

    static func clean(_ value: String) -> String {
        let needsWork = value.unicodeScalars.contains(where: isHidden) || value.count > maximumFieldLength
        guard needsWork else { return value }
        var scalars = String.UnicodeScalarView()
        for scalar in value.unicodeScalars {
            scalars.append(isHidden(scalar) ? "\u{FFFD}" : scalar)
        }
        let cleaned = String(scalars)
        guard cleaned.count > maximumFieldLength else { return cleaned }
        return String(cleaned.prefix(maximumFieldLength - 1)) + "…"
    }

    /// Characters a terminal or log viewer acts on instead of showing.
    private static func isHidden(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true  // C0, DEL, C1 (includes NEL)
        case 0x2028, 0x2029: true  // line and paragraph separators
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true  // bidirectional marks and overrides
        default: false
        }
    }
}

/// An error that can say how it is recorded when it refuses an audited action: its stable code
/// and the HTTP status it is answered with. ``BrokerError`` is one; so are the OAuth errors of
/// the server.
public protocol AuditableFailure: Error {
    var auditCode: String { get }
    var httpStatus: Int { get }
}

extension BrokerError: AuditableFailure {
    public var auditCode: String { code.rawValue }
    public var httpStatus: Int { code.httpStatus }
}

/// How a refused or failed action is recorded: `denied` when the caller was not allowed or was
/// throttled (403, 429), `failure` otherwise, with the error's stable code as the reason.
public struct AuditRefusal: Sendable, Equatable {
    public var outcome: AuditOutcome
    public var reason: String

    public init(_ error: any Error) {
        guard let failure = error as? any AuditableFailure else {
            self.outcome = .failure
            self.reason = ErrorCode.internalError.rawValue
            return
        }
        outcome = failure.httpStatus == 403 || failure.httpStatus == 429 ? .denied : .failure
        reason = failure.auditCode
    }
}
