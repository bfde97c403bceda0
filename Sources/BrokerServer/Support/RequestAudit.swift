import BrokerCore
import Hummingbird
import Logging

extension RemoteAddressRequestContext {
    /// The request id that log lines and the `X-Request-ID` header carry.
    var auditRequestID: String {
        if case .string(let requestID)? = logger[metadataKey: "request_id"] { return requestID }
        return self.id
    }
}

extension BrokerServices {
    /// What an audit line says about the request: its id and the client IP.
    func auditContext(_ request: Request, _ context: some RemoteAddressRequestContext) -> AuditContext {
        AuditContext(
            requestID: context.auditRequestID,
            clientIP: ClientIP.of(request, context: context, trustedProxies: trustedProxies))
    }

    /// The holder of the request's broker session token, as the actor of an administrative
    /// action (401 without a valid one).
    func actor(of request: Request, _ context: some RemoteAddressRequestContext) async throws -> AdministrativeActor {
        var actor = try await principal(of: request).actor
        actor.context = auditContext(request, context)
        return actor
    }
}

/// What an audit line names besides the action: who, which organization, which token.
struct AuditSubject: Sendable {
    var actor: String?
    var organization: String?
    var target: String?
    var reason: String?
    /// `actor` is what a login attempt typed as the username, not an authenticated name: a
    /// refusal records it only if it names an account (``AttemptedUsernames``).
    var actorIsAttempted = false

    init(actor: String? = nil, organization: String? = nil, target: String? = nil, reason: String? = nil) {
        self.actor = actor
        self.organization = organization
        self.target = target
        self.reason = reason
    }

    /// A login attempt naming `username`.
    static func attempt(username: String, organization: String? = nil, reason: String? = nil) -> AuditSubject {
        var subject = AuditSubject(actor: username, organization: organization, reason: reason)
        subject.actorIsAttempted = true
        return subject
    }
}

extension BrokerServices {
    /// Runs an authentication or token flow and writes its audit line: `success` with what
    /// the result names (the account, the token's `jti`), or `failure`/`denied` with the error
    /// code and what the request claimed. A used refresh token presented again is recorded as
    /// `refresh.reuse_detected`. In `closed` mode a success that cannot be recorded answers 503
    /// and the token is not handed out.
    @discardableResult
    func audited<Result>(
        _ action: AuditAction, _ context: AuditContext, attempt: AuditSubject = AuditSubject(),
        _ work: () async throws -> Result, success: (Result) -> AuditSubject
    ) async throws -> Result {
        let result: Result
        do {
            result = try await work()
        } catch let error as BrokerError where error.code == .auditUnavailable {
            throw error
        } catch {
            let refusal = AuditRefusal(error)
            var actor = attempt.actor
            if attempt.actorIsAttempted, let typed = actor { actor = await attemptedUsernames.auditName(typed) }
            try await audit.record(
                refusal.reason == ErrorCode.refreshTokenReused.rawValue ? .refreshReuseDetected : action,
                refusal.outcome, actor: actor, organization: attempt.organization, target: attempt.target,
                reason: refusal.reason, context: context)
            throw error
        }
        let subject = success(result)
        try await audit.record(
            action, .success, actor: subject.actor ?? attempt.actor, organization: subject.organization ?? attempt.organization,
            target: subject.target ?? attempt.target, reason: subject.reason, context: context)
        return result
    }
}

extension TokenBundle {
    var auditSubject: AuditSubject {
        AuditSubject(actor: claims.username, organization: claims.organization, target: "jti:\(claims.tokenID)")
    }
}

extension TokenIssuer.IssuedToken {
    var auditSubject: AuditSubject {
        AuditSubject(actor: claims.username, organization: claims.organization.isEmpty ? nil : claims.organization,
            target: "jti:\(claims.tokenID)")
    }
}
