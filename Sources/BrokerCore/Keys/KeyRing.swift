import BrokerCrypto
import BrokerSync
import Foundation

/// Where a signing key is in its life: published before it signs, published after it stops
/// signing until its last token has expired.
public enum KeyState: String, Sendable, Codable, CaseIterable {
    /// Published in the JWKS, not yet signing: gateways learn it before the first token it signs.
    case next
    /// Signs new tokens. Exactly one per algorithm in use.
    case active
    /// No longer signs; published until every token it signed has expired plus leeway.
    case retired
}

/// What the ring records about one key (the manifest entry; the private key lives beside it).
public struct KeyMetadata: Sendable, Equatable, Codable {
    /// The RFC 7638 thumbprint of the public key.
    public var kid: String
    public var algorithm: JWSAlgorithm
    public var state: KeyState
    public var createdAt: Date
    public var activatedAt: Date?
    public var retiredAt: Date?
    /// The latest moment a retired key leaves the JWKS (the worst case, set when it is retired);
    /// it leaves earlier when the tokens it actually signed expire sooner (``KeyLifecyclePolicy``).
    public var retiresAt: Date?

    enum CodingKeys: String, CodingKey {
        case kid, state
        case algorithm = "alg"
        case createdAt = "created_at"
        case activatedAt = "activated_at"
        case retiredAt = "retired_at"
        case retiresAt = "retires_at"
    }

    public init(
        kid: String, algorithm: JWSAlgorithm, state: KeyState, createdAt: Date, activatedAt: Date? = nil,
        retiredAt: Date? = nil, retiresAt: Date? = nil
    ) {
        self.kid = kid
        self.algorithm = algorithm
        self.state = state
        self.createdAt = createdAt
        self.activatedAt = activatedAt
        self.retiredAt = retiredAt
        self.retiresAt = retiresAt
    }
}

/// A key of the ring with its material loaded.
public struct RingKey: Sendable {
    public var metadata: KeyMetadata
    public var privateKey: PrivateKey
    public var publicKey: PublicKey { privateKey.publicKey }
}

/// An immutable view of the key ring: what signs, what verifies, what is published.
/// Built once per change of the ring so that the hot paths only look things up.
public struct KeyRingSnapshot: Sendable {
    /// Increases with every change written to the manifest.
    public let version: Int
    public let keys: [RingKey]
    private let signers: [JWSAlgorithm: ActiveSigner]
    private let verificationKeys: [String: PublicKey]
    /// `{"keys":[...]}` of every published key, serialized once.
    public let jwksJSON: [UInt8]

    /// The signer of the active key for an algorithm.
    public struct ActiveSigner: Sendable {
        public let kid: String
        public let signer: JWSSigner
        public let publicKey: PublicKey
    }

    public init(version: Int, keys: [RingKey]) throws {
        self.version = version
        self.keys = keys
        var signers: [JWSAlgorithm: ActiveSigner] = [:]
        var verificationKeys: [String: PublicKey] = [:]
        for key in keys {
            verificationKeys[key.metadata.kid] = key.publicKey
            if key.metadata.state == .active {
                guard signers[key.metadata.algorithm] == nil else {
                    throw KeyRingError("two active keys for \(key.metadata.algorithm.rawValue)")
                }
                signers[key.metadata.algorithm] = ActiveSigner(
                    kid: key.metadata.kid,
                    signer: JWSSigner(key: key.privateKey, kid: key.metadata.kid),
                    publicKey: key.publicKey)
            }
        }
        self.signers = signers
        self.verificationKeys = verificationKeys
        let published = keys.sorted { lhs, rhs in
            let order: [KeyState: Int] = [.active: 0, .next: 1, .retired: 2]
            return (order[lhs.metadata.state]!, lhs.metadata.createdAt) < (order[rhs.metadata.state]!, rhs.metadata.createdAt)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let jwks = JWKSet(keys: published.map { $0.publicKey.jwk(kid: $0.metadata.kid) })
        self.jwksJSON = Array(try encoder.encode(jwks))
    }

    /// The active signer for `algorithm`, if the ring has one.
    public func activeSigner(for algorithm: JWSAlgorithm) -> ActiveSigner? { signers[algorithm] }

    /// The published key with this `kid`. A `kid` that is not exactly a published key's is unknown:
    /// it is never used as a path or URL.
    public func verificationKey(kid: String) -> PublicKey? { verificationKeys[kid] }

    public func metadata(state: KeyState, algorithm: JWSAlgorithm) -> [KeyMetadata] {
        keys.map(\.metadata).filter { $0.state == state && $0.algorithm == algorithm }
    }
}

/// A JWK Set (RFC 7517 section 5).
public struct JWKSet: Sendable, Codable, Equatable {
    public var keys: [JWK]
}

/// The live key ring of a running broker: the current snapshot, replaced whole on change.
///
/// ```swift
/// let ring = KeyRing(try directory.loadOrInitialize(algorithm: .rs256))
/// let signer = ring.snapshot.activeSigner(for: .rs256)
/// ```
public final class KeyRing: Sendable {
    private let current: Locked<KeyRingSnapshot>

    public init(_ snapshot: KeyRingSnapshot) {
        current = Locked(snapshot)
        BrokerMetrics.signingKeys(snapshot)
    }

    public var snapshot: KeyRingSnapshot { current.withLock { $0 } }

    public func replace(with snapshot: KeyRingSnapshot) {
        current.withLock { $0 = snapshot }
        BrokerMetrics.signingKeys(snapshot)
    }
}

/// A key ring that cannot be loaded or changed, with a message for the operator.
public struct KeyRingError: Error, Sendable, CustomStringConvertible {
    public var message: InterfaceMessage
    public var description: String { message.description }
    public init(_ description: String) { self.message = InterfaceMessage(stringLiteral: description) }
    public init(phrased message: InterfaceMessage) { self.message = message }
}
