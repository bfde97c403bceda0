import BrokerCrypto
import Foundation

/// The admin API's view of the signing key ring: list, rotate, retire, wherever the ring is kept
/// (``KeyRingStorage``). File work and key generation (RSA takes a while) run on a thread pool,
/// never on an event loop; the running server's ring is replaced as soon as the change is stored.
///
/// ```swift
/// let snapshot = try await keys.rotate(force: false, by: principal.actor)
/// ```
public struct KeyAdministration: Sendable {
    public let storage: any KeyRingStorage
    public let ring: KeyRing
    public let algorithm: JWSAlgorithm
    public let policy: KeyLifecyclePolicy
    public let audit: AuditTrail

    public init(
        storage: any KeyRingStorage, ring: KeyRing, algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy,
        audit: AuditTrail = .discarding
    ) {
        self.audit = audit
        self.storage = storage
        self.ring = ring
        self.algorithm = algorithm
        self.policy = policy
    }

    public func list(by actor: AdministrativeActor) throws -> [KeyMetadata] {
        try actor.requireGlobalAdmin("list signing keys")
        return ring.snapshot.keys.map(\.metadata)
    }

    /// - Throws: 409 ``ErrorCode/conflict`` when the `next` key is too young (the message says
    ///   when it will be safe) unless `force`.
    /// The key ring cannot join a store transaction: the audit line follows the change, and in
    /// `closed` mode a failure to write it answers 503 although the rotation stands.
    public func rotate(force: Bool, by actor: AdministrativeActor) async throws -> KeyRingSnapshot {
        let audited = AuditedAction(.keyRotate, by: actor, trail: audit)
        return try await audited.run {
            try actor.requireGlobalAdmin("rotate signing keys")
            let (storage, algorithm, policy) = (self.storage, self.algorithm, self.policy)
            let snapshot = try await apply { try await storage.rotateRing(algorithm: algorithm, policy: policy, force: force) }
            try await audit.record(
                .keyRotate, .success, actor: actor.name, target: snapshot.activeSigner(for: algorithm)?.kid,
                reason: force ? "forced" : nil, context: actor.context)
            return snapshot
        }
    }

    /// Withdraws a key at once. - Throws: 404 for an unknown kid.
    public func retire(kid: String, by actor: AdministrativeActor) async throws -> KeyRingSnapshot {
        let audited = AuditedAction(.keyRetire, by: actor, target: kid, trail: audit)
        return try await audited.run {
            try actor.requireGlobalAdmin("retire signing keys")
            guard ring.snapshot.keys.contains(where: { $0.metadata.kid == kid }) else {
                throw BrokerError(.notFound, "no key \(kid) in the ring")
            }
            let (storage, policy) = (self.storage, self.policy)
            let snapshot = try await apply { try await storage.retireKeyNow(kid: kid, policy: policy) }
            try await audit.record(.keyRetire, .success, actor: actor.name, target: kid, context: actor.context)
            return snapshot
        }
    }

    private func apply(_ change: @Sendable () async throws -> KeyRingSnapshot) async throws -> KeyRingSnapshot {
        let snapshot: KeyRingSnapshot
        do {
            snapshot = try await change()
        } catch let error as KeyRingError {
            throw BrokerError(.conflict, phrased: error.message)
        }
        ring.replace(with: snapshot)
        return snapshot
    }
}
