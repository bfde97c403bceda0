/// The timing rules of the key ring, derived from the configuration so that no valid token is
/// ever rejected by a gateway that honours the JWKS cache headers:
/// - a `next` key is published at least ``prepublication`` before it signs, and the JWKS
///   `max-age` never exceeds it, so every cache holds the key before its first token;
/// - a retired key stays published for ``retention``, computed when it is retired and stored in
///   the ring (`retires_at`), so a restart or another process never shortens it.
///
/// The retention rule: never unpublish a key while a token it signed can still be valid. A token
/// lives at most the longest lifetime of a token family the broker can issue: organization
/// tokens (`access_lifetime`, the cap of every organization's policy), admin sessions
/// (`admin_session_lifetime`) and generation-2 tokens (`generation2_access_lifetime`). GitHub
/// logins cannot be switched off (any account linked to GitHub may log in, however the store
/// changes), so the generation-2 lifetime always counts: lower it if the site issues none.
/// Plus `clock_skew`, the leeway verifiers allow on `exp`, plus `key_reload_interval`: a server
/// keeps signing with a key that `broker keys rotate` retired in another process until it
/// reloads the ring.
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
    /// Seconds a running server may take to notice a change of the ring on disk, and so to stop
    /// signing with a retired key or to unpublish one whose retention has passed.
    public var reloadInterval: Int

    public init(prepublication: Int, retention: Int, jwksMaxAge: Int, rotationPeriod: Int = 0, reloadInterval: Int = 0) {
        self.prepublication = prepublication
        self.retention = retention
        self.jwksMaxAge = min(jwksMaxAge, prepublication)
        self.rotationPeriod = rotationPeriod
        self.reloadInterval = reloadInterval
    }

    public init(_ configuration: BrokerConfiguration) {
        self.init(
            prepublication: configuration.keyPrepublication,
            retention: Self.longestTokenLifetime(configuration) + configuration.clockSkew + configuration.keyReloadInterval,
            jwksMaxAge: configuration.jwksMaxAge, rotationPeriod: configuration.keyRotationPeriod,
            reloadInterval: configuration.keyReloadInterval)
    }

    /// The longest lifetime of a token any key signs: organization, generation-2 or session tokens.
    public static func longestTokenLifetime(_ configuration: BrokerConfiguration) -> Int {
        max(configuration.accessLifetime, configuration.generation2AccessLifetime, configuration.adminSessionLifetime)
    }

    /// The most keys of one algorithm the JWKS can hold at once without a forced rotation: the
    /// active and the next key, and the retired keys still published. A non-forced rotation
    /// promotes a `next` key at least ``prepublication`` old, created by the rotation before, so
    /// rotations are at least ``prepublication`` apart; a retired key is published for
    /// ``retention`` and unpublished within ``reloadInterval`` after. `nil` when
    /// ``prepublication`` is 0: rotations are not limited, nor the number of keys.
    /// (`broker keys retire --now` only ever lowers the count; `rotate --force` may exceed it.)
    public var maximumPublishedKeys: Int? {
        guard prepublication > 0 else { return nil }
        let published = retention + reloadInterval
        let retired = (published + prepublication - 1) / prepublication
        return 2 + retired
    }
}
