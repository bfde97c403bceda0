import BrokerCrypto
import Foundation

/// One decided change of the ring: the metadata of every key after it, the keys it generates and
/// the kids it withdraws. Where it is written (files, the database) is the storage's business.
struct KeyRingChange: Sendable {
    var metadata: [KeyMetadata]
    var added: [RingKey]
    var removed: [String]

    /// The ring after the change, built from the keys before it and the ones added.
    func keys(from before: [RingKey]) -> [RingKey] {
        let loaded = Dictionary(uniqueKeysWithValues: (before + added).map { ($0.metadata.kid, $0.privateKey) })
        return (metadata + added.map(\.metadata)).map { RingKey(metadata: $0, privateKey: loaded[$0.kid]!) }
    }
}

/// The lifecycle rules of the ring (``KeyDirectory`` and ``DatabaseKeyRing`` apply the same):
/// each function decides, from the keys as they are now, what a change does. Pure but for key
/// generation, so that a storage that lost a race can decide again against the ring that won.
enum KeyRingChanges {
    /// The active and the next key `algorithm` lacks; `nil` when it has both.
    static func initialize(_ keys: [RingKey], algorithm: JWSAlgorithm, now: Date) throws -> KeyRingChange? {
        let metadata = keys.map(\.metadata)
        let hasActive = metadata.contains { $0.algorithm == algorithm && $0.state == .active }
        let hasNext = metadata.contains { $0.algorithm == algorithm && $0.state == .next }
        if hasActive && hasNext { return nil }
        var created: [RingKey] = []
        if !hasActive { created.append(try generateKey(algorithm, state: .active, now: now)) }
        if !hasNext { created.append(try generateKey(algorithm, state: .next, now: now)) }
        return KeyRingChange(metadata: metadata, added: created, removed: [])
    }

    /// See ``KeyDirectory/rotate(algorithm:policy:force:)``.
    static func rotate(
        _ keys: [RingKey], algorithm: JWSAlgorithm, policy: KeyLifecyclePolicy, force: Bool, now: Date
    ) throws -> KeyRingChange {
        var metadata = keys.map(\.metadata)
        guard let nextIndex = metadata.firstIndex(where: { $0.algorithm == algorithm && $0.state == .next }) else {
            throw KeyRingError("the ring has no next \(algorithm.rawValue) key to promote")
        }
        let safeAt = metadata[nextIndex].createdAt.addingTimeInterval(TimeInterval(policy.prepublication))
        if !force && now < safeAt {
            let (kid, published, safe) = (
                metadata[nextIndex].kid, KeyDirectory.format(metadata[nextIndex].createdAt), KeyDirectory.format(safeAt)
            )
            throw KeyRingError(
                phrased: """
                    the next key \(kid) was published at \(published); \
                    a gateway caching the JWKS may not have it before \(safe). Rotate after that, \
                    or now with \(.override("force")) (tokens it signs may be rejected until caches refresh)
                    """)
        }
        for index in metadata.indices where metadata[index].algorithm == algorithm && metadata[index].state == .active {
            metadata[index].state = .retired
            metadata[index].retiredAt = now
            metadata[index].retiresAt = now.addingTimeInterval(TimeInterval(policy.retention))
        }
        metadata[nextIndex].state = .active
        metadata[nextIndex].activatedAt = now
        let fresh = try generateKey(algorithm, state: .next, now: now)
        return KeyRingChange(metadata: metadata, added: [fresh], removed: [])
    }

    /// See ``KeyDirectory/retireNow(kid:policy:)``.
    static func retire(_ keys: [RingKey], kid: String, now: Date) throws -> KeyRingChange {
        guard let withdrawn = keys.first(where: { $0.metadata.kid == kid })?.metadata else {
            throw KeyRingError("no key \(kid) in the ring")
        }
        var metadata = keys.map(\.metadata).filter { $0.kid != kid }
        var added: [RingKey] = []
        let algorithm = withdrawn.algorithm
        if withdrawn.state == .active {
            guard let nextIndex = metadata.firstIndex(where: { $0.algorithm == algorithm && $0.state == .next }) else {
                throw KeyRingError("no next \(algorithm.rawValue) key to take over from \(kid)")
            }
            metadata[nextIndex].state = .active
            metadata[nextIndex].activatedAt = now
        }
        if withdrawn.state != .retired {
            added.append(try generateKey(algorithm, state: .next, now: now))
        }
        return KeyRingChange(metadata: metadata, added: added, removed: [kid])
    }

    /// See ``KeyDirectory/prune(policy:signed:)``; `nil` when nothing is due.
    static func prune(_ keys: [RingKey], policy: KeyLifecyclePolicy, signed: SignedLifetimes, now: Date) -> KeyRingChange? {
        let due = keys.map(\.metadata).filter { policy.isDue($0, at: now, signed: signed) }
        guard !due.isEmpty else { return nil }
        let kept = keys.map(\.metadata).filter { key in !due.contains { $0.kid == key.kid } }
        return KeyRingChange(metadata: kept, added: [], removed: due.map(\.kid))
    }

    static func generateKey(_ algorithm: JWSAlgorithm, state: KeyState, now: Date) throws -> RingKey {
        let key = try PrivateKey.generate(algorithm)
        let metadata = KeyMetadata(
            kid: key.publicKey.thumbprint, algorithm: algorithm, state: state, createdAt: now,
            activatedAt: state == .active ? now : nil, signedLifetimesRecorded: true)
        return RingKey(metadata: metadata, privateKey: key)
    }

    /// Whole seconds: the stored ring keeps integers, and a reload must give equal metadata.
    static func wholeSeconds(_ date: Date) -> Date {
        Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
    }
}

extension KeyLifecyclePolicy {
    /// Whether a scheduled rotation of `algorithm` is due in `ring` at `now`: the active key has
    /// signed for ``rotationPeriod`` and the next key has been published for ``prepublication``.
    public func scheduledRotationIsDue(_ ring: KeyRingSnapshot, algorithm: JWSAlgorithm, at now: Date) -> Bool {
        guard rotationPeriod > 0,
            let active = ring.metadata(state: .active, algorithm: algorithm).first,
            let activated = active.activatedAt,
            now >= activated.addingTimeInterval(TimeInterval(rotationPeriod)),
            let next = ring.metadata(state: .next, algorithm: algorithm).first,
            now >= next.createdAt.addingTimeInterval(TimeInterval(prepublication))
        else { return false }
        return true
    }
}
