import BrokerCrypto
import Foundation
import NIOPosix

/// The admin API's view of the signing key ring: list, rotate, retire. File work and key
/// generation (RSA takes a while) run on a thread pool, never on an event loop; the running
/// server's ring is replaced as soon as the change is on disk.
///
/// ```swift
/// let snapshot = try await keys.rotate(force: false, by: principal.actor)
/// ```
public struct KeyAdministration: Sendable {
    public let directory: KeyDirectory
    public let ring: KeyRing
    public let algorithm: JWSAlgorithm
    public let policy: KeyLifecyclePolicy

    public init(directory: KeyDirectory, ring: KeyRing, algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy) {
        self.directory = directory
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
    public func rotate(force: Bool, by actor: AdministrativeActor) async throws -> KeyRingSnapshot {
        try actor.requireGlobalAdmin("rotate signing keys")
        let (directory, algorithm, policy) = (self.directory, self.algorithm, self.policy)
        return try await apply { try directory.rotate(algorithm: algorithm, policy: policy, force: force) }
    }

    /// Withdraws a key at once. - Throws: 404 for an unknown kid.
    public func retire(kid: String, by actor: AdministrativeActor) async throws -> KeyRingSnapshot {
        try actor.requireGlobalAdmin("retire signing keys")
        guard ring.snapshot.keys.contains(where: { $0.metadata.kid == kid }) else {
            throw BrokerError(.notFound, "no key \(kid) in the ring")
        }
        let (directory, policy) = (self.directory, self.policy)
        return try await apply { try directory.retireNow(kid: kid, policy: policy) }
    }

    private func apply(_ change: @escaping @Sendable () throws -> KeyRingSnapshot) async throws -> KeyRingSnapshot {
        let snapshot: KeyRingSnapshot
        do {
            snapshot = try await NIOThreadPool.singleton.runIfActive(change)
        } catch let error as KeyRingError {
            throw BrokerError(.conflict, error.description)
        }
        ring.replace(with: snapshot)
        return snapshot
    }
}
