/// The timing rules of the key ring, derived from the configuration so that no valid token is
/// ever rejected by a gateway that honours the JWKS cache headers:
/// - a `next` key is published at least ``prepublication`` before it signs, and the JWKS
///   `max-age` never exceeds it, so every cache holds the key before its first token;
/// - a retired key stays published for ``retention``: the longest token lifetime plus the
///   clock-skew leeway.
///
/// ```swift
/// let policy = KeyLifecyclePolicy(configuration)
/// let ring = try directory.rotate(algorithm: .rs256, policy: policy, force: false)
/// ```
public struct KeyLifecyclePolicy: Sendable, Equatable {
    /// Seconds a `next` key must have been published before a rotation may promote it.
    public var prepublication: Int
    /// Seconds a retired key stays published.
    public var retention: Int
    /// `Cache-Control: max-age` of the JWKS and PEM; never longer than ``prepublication``.
    public var jwksMaxAge: Int
    /// Seconds between scheduled rotations; 0 disables them.
    public var rotationPeriod: Int

    public init(prepublication: Int, retention: Int, jwksMaxAge: Int, rotationPeriod: Int = 0) {
        self.prepublication = prepublication
        self.retention = retention
        self.jwksMaxAge = min(jwksMaxAge, prepublication)
        self.rotationPeriod = rotationPeriod
    }

    public init(_ configuration: BrokerConfiguration) {
        self.init(
            prepublication: configuration.keyPrepublication,
            // The longest-lived token any key signs: organization, generation-2 or session tokens.
            retention: max(
                configuration.accessLifetime, configuration.generation2AccessLifetime, configuration.adminSessionLifetime)
                + configuration.clockSkew,
            jwksMaxAge: configuration.jwksMaxAge, rotationPeriod: configuration.keyRotationPeriod)
    }
}
