/// One administrative action and its audit line, never written inside a transaction body: a
/// store may run a body more than once (a retried serialization failure), and a line written by
/// a run that was then rolled back would record what did not happen, or record it twice.
///
/// So that in `closed` mode an action the trail cannot record does not happen, the success line
/// is durable before the change commits: the change is first rehearsed in a transaction that is
/// rolled back (every refusal comes out there, with no line but its own), then the success line
/// is written, then the change runs for real. Should the real run fail where the rehearsal
/// succeeded (another change committed in between), its refusal line follows the success line.
/// A refusal or failure is written after the rollback.
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

    /// Rehearses `body`, records success, then runs `body` in one transaction that commits.
    func commit<T: Sendable>(
        in store: any Store, reason: String? = nil, _ body: @Sendable @escaping (any StoreTransaction) async throws -> T
    ) async throws -> T {
        try await commit(in: store, reason: reason, alongside: [], body)
    }

    /// ``commit(in:reason:_:)`` for one change that is several actions at once (a sign-up with an
    /// organization's invitation creates the account and makes it a member): after this action's
    /// success line, each of `alongside` writes its own, all durable before the change commits.
    /// A refusal is this action's alone (``run(_:)``): the others did not happen either.
    func commit<T: Sendable>(
        in store: any Store, reason: String? = nil, alongside: [(action: AuditedAction, reason: String?)],
        _ body: @Sendable @escaping (any StoreTransaction) async throws -> T
    ) async throws -> T {
        do {
            _ = try await store.transaction { tx -> T in
                _ = try await body(tx)
                throw Rehearsal()
            }
        } catch is Rehearsal {
            // It would succeed; nothing was written.
        }
        for (audited, reason) in [(self, reason)] + alongside {
            try await trail.record(
                audited.action, .success, actor: audited.actor.name, organization: audited.organization, session: audited.session,
                target: audited.target, reason: reason, context: audited.actor.context)
        }
        return try await store.transaction(body)
    }

    /// Rolls a rehearsal back.
    private struct Rehearsal: Error {}
}
