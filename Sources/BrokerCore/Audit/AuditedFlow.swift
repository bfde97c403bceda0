/// The session an audit line is about, as an operator needs it in an incident: whose it is (the
/// account), for which organization (generation-1 sessions; `nil` for the others) and which
/// session it is (its `sid`: random, safe to log, unlike the tokens it issues).
///
/// ```swift
/// let session = AuditedSession(username: "alice", organization: "org1", sessionID: family.id)
/// throw BrokerError(.refreshTokenReused, "...").concerning(session)
/// ```
public struct AuditedSession: Sendable, Equatable {
    /// `nil` only if the account is gone.
    public var username: String?
    public var organization: String?
    /// `nil` only for a token issued before tokens named their session.
    public var sessionID: String?

    public init(username: String?, organization: String?, sessionID: String?) {
        self.username = username
        self.organization = organization.flatMap { $0.isEmpty ? nil : $0 }
        self.sessionID = sessionID
    }

    /// The session `claims` belong to, as the token names it.
    public init(_ claims: AccessTokenClaims) {
        self.init(username: claims.username, organization: claims.organization, sessionID: claims.sessionID)
    }

    /// Reads whose `family` is: the account's username and the organization's name.
    static func of(_ family: RefreshFamily, in tx: any StoreTransaction) async throws -> AuditedSession {
        let user = try await tx.user(id: family.userID)
        var organization: String?
        if let organizationID = family.organizationID { organization = try await tx.organization(id: organizationID)?.name }
        return AuditedSession(username: user?.username, organization: organization, sessionID: family.id)
    }

    /// The line's fields for a session its own holder acted on.
    public var auditSubject: AuditSubject {
        AuditSubject(actor: username, organization: organization, session: sessionID)
    }
}

/// What an audit line names besides the action: who, which organization, which session, which
/// token.
public struct AuditSubject: Sendable, Equatable {
    public var actor: String?
    public var organization: String?
    public var session: String?
    public var target: String?
    public var reason: String?
    /// `actor` is what a login attempt typed as the username, not an authenticated name: a
    /// refusal records it only if it names an account (``AttemptedUsernames``).
    public var actorIsAttempted = false

    public init(
        actor: String? = nil, organization: String? = nil, session: String? = nil, target: String? = nil,
        reason: String? = nil
    ) {
        self.actor = actor
        self.organization = organization
        self.session = session
        self.target = target
        self.reason = reason
    }

    /// A login attempt naming `username`.
    public static func attempt(username: String, organization: String? = nil, reason: String? = nil) -> AuditSubject {
        var subject = AuditSubject(actor: username, organization: organization, reason: reason)
        subject.actorIsAttempted = true
        return subject
    }

    /// `self`, with what `other` names taking precedence.
    func overlaid(by other: AuditSubject) -> AuditSubject {
        var merged = self
        merged.actor = other.actor ?? actor
        merged.actorIsAttempted = other.actor == nil && actorIsAttempted
        merged.organization = other.organization ?? organization
        merged.session = other.session ?? session
        merged.target = other.target ?? target
        merged.reason = other.reason ?? reason
        return merged
    }
}

/// The audit of the authentication and token flows (logins, renewals, sign-outs, revocation,
/// introspection), held by the services that run them: whoever calls a service (a route, a
/// test, a tool) gets the same lines. Administrative changes use ``AuditedAction``.
///
/// Lines are written after the flow's transactions have committed, never inside one (a store
/// may run a transaction body again), and before the result is returned: in `closed` mode a
/// success that cannot be recorded throws `audit_unavailable` and the result (a token) is not
/// handed out.
///
/// ```swift
/// let flows = FlowAudit(trail: trail, attemptedUsernames: names)
/// let bundle = try await flows.run(.loginPassword, context, attempt: .attempt(username: "alice")) {
///     try await login()
/// } success: { $0.auditSubject }
/// ```
public struct FlowAudit: Sendable {
    public let trail: AuditTrail
    /// How a refused login's typed username is recorded.
    public let attemptedUsernames: AttemptedUsernames

    public init(trail: AuditTrail, attemptedUsernames: AttemptedUsernames) {
        self.trail = trail
        self.attemptedUsernames = attemptedUsernames
    }

    /// Runs a flow and writes its audit line: `success` with what the result names (the
    /// account, the organization, the session, the token's `jti`), or `failure`/`denied` with
    /// the error code, what the request claimed and, when the service could tell
    /// (``BrokerError/session``), whose session the refusal concerns. A used refresh token
    /// presented again is recorded as `refresh.reuse_detected`, `denied`. In `closed` mode a
    /// success that cannot be recorded throws `audit_unavailable` and the result is not returned.
    /// Returns (or throws) only once what the flow committed is on disk (``DurabilityScope``).
    @discardableResult
    public func run<Result>(
        _ action: AuditAction, _ context: AuditContext, attempt: AuditSubject = AuditSubject(),
        _ work: () async throws -> Result, success: (Result) -> AuditSubject
    ) async throws -> Result {
        // The flow's commits reach the disk while its audit line does: one wait for both syncs.
        try await DurabilityScope.run {
            try await self.runAudited(action, context, attempt: attempt, work, success: success)
        }
    }

    private func runAudited<Result>(
        _ action: AuditAction, _ context: AuditContext, attempt: AuditSubject,
        _ work: () async throws -> Result, success: (Result) -> AuditSubject
    ) async throws -> Result {
        let result: Result
        do {
            result = try await work()
        } catch let error as BrokerError where error.code == .auditUnavailable {
            throw error
        } catch {
            try await recordRefusal(action, error, context, attempt: attempt)
            throw error
        }
        let named = success(result)
        let subject = attempt.overlaid(by: named)
        // The attempt's reason ("pwd") explains a refusal; a success says its own.
        try await trail.record(
            action, .success, actor: subject.actor, organization: subject.organization, session: subject.session,
            target: subject.target, reason: named.reason, context: context)
        return result
    }

    /// Writes the line of a flow that `error` refused (see ``run(_:_:attempt:_:success:)``).
    public func recordRefusal(_ action: AuditAction, _ error: any Error, _ context: AuditContext, attempt: AuditSubject) async throws {
        var refusal = AuditRefusal(error)
        var subject = attempt
        if let session = (error as? BrokerError)?.session { subject = attempt.overlaid(by: session.auditSubject) }
        if subject.actorIsAttempted, let typed = subject.actor { subject.actor = await attemptedUsernames.auditName(typed) }
        let reused = refusal.reason == ErrorCode.refreshTokenReused.rawValue
        // Someone else holds a token of the session: identified, and refused.
        if reused { refusal.outcome = .denied }
        try await trail.record(
            reused ? .refreshReuseDetected : action, refusal.outcome, actor: subject.actor,
            organization: subject.organization, session: subject.session, target: subject.target,
            reason: refusal.reason, context: context)
    }
}

extension TokenBundle {
    public var auditSubject: AuditSubject {
        var subject = AuditedSession(claims).auditSubject
        subject.target = "jti:\(claims.tokenID)"
        return subject
    }
}

extension TokenIssuer.IssuedToken {
    public var auditSubject: AuditSubject {
        var subject = AuditedSession(claims).auditSubject
        subject.target = "jti:\(claims.tokenID)"
        return subject
    }
}

extension BrokerSessionService.SessionToken {
    /// A broker session names no organization; `reason` says which global role it carries.
    public var auditSubject: AuditSubject {
        var subject = AuditedSession(claims).auditSubject
        subject.target = "jti:\(claims.tokenID)"
        subject.reason = user.globalRole.map { "role=\($0.rawValue)" }
        return subject
    }
}
