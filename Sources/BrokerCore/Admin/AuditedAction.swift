/// One administrative action and its audit line. Success is written inside the action's
/// transaction, just before the commit, so that in `closed` mode an action the trail cannot
/// record does not happen; a refusal or failure is written after the rollback.
///
/// ```swift
/// let audited = AuditedAction(.userDelete, by: actor, target: username, trail: audit)
/// try await audited.run {
///     try actor.requireGlobalAdmin("delete accounts")
///     try await audited.commit(in: store) { tx in ... }
/// }
/// ```
struct AuditedAction: Sendable {
    let action: AuditAction
    let actor: AdministrativeActor
    let organization: String?
    /// The session acted on (its id), for the actions that end one.
    let session: String?
    let target: String?
    let trail: AuditTrail

    init(
        _ action: AuditAction, by actor: AdministrativeActor, organization: String? = nil, session: String? = nil,
        target: String? = nil, trail: AuditTrail
    ) {
        self.action = action
        self.actor = actor
        self.organization = organization
        self.session = session
        self.target = target
        self.trail = trail
    }

    /// Runs the action; when it fails, records the ``AuditRefusal``.
    func run<T: Sendable>(_ work: () async throws -> T) async throws -> T {
        do {
            return try await work()
        } catch let error as BrokerError where error.code == .auditUnavailable {
            throw error
        } catch {
            let refusal = AuditRefusal(error)
            try await trail.record(
                action, refusal.outcome, actor: actor.name, organization: organization, session: session, target: target,
                reason: refusal.reason, context: actor.context)
            throw error
        }
    }

    /// Runs `body` in one transaction and records success before it commits.
    func commit<T: Sendable>(
        in store: any Store, reason: String? = nil, _ body: @Sendable @escaping (any StoreTransaction) async throws -> T
    ) async throws -> T {
        let (trail, action, actor, organization, session, target) = (trail, action, actor, organization, session, target)
        return try await store.transaction { tx in
            let result = try await body(tx)
            try await trail.record(
                action, .success, actor: actor.name, organization: organization, session: session, target: target,
                reason: reason, context: actor.context)
            return result
        }
    }
}
