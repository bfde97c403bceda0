import Foundation

/// The timing rules of the key ring, derived from the configuration so that no valid token is
/// ever rejected by a gateway that honours the JWKS cache headers:
/// - a `next` key is published at least ``prepublication`` before it signs, and the JWKS
///   `max-age` never exceeds it, so every cache holds the key before its first token;
/// - a retired key stays published while a token it signed can still be valid, and never longer
///   than ``retention`` (the worst case), computed when it is retired and stored in the ring
///   (`retires_at`), so a restart or another process never extends it.
///
/// The retention rule: never unpublish a key while a token it signed can still be valid. A token
/// the key signs after it was retired comes from a server that has not reloaded the ring yet
/// (`broker keys rotate` in another process): at most `key_reload_interval` after `retired_at`.
/// It lives its lifetime, and verifiers accept it `clock_skew` past `exp`. So a retired key
/// leaves the JWKS at
///
///     retired_at + L + clock_skew + key_reload_interval   (capped by retires_at)
///
/// where L is the longest lifetime of a token the key actually signed, recorded in the store
/// before the signature (``SignedLifetimeLog``; 0 when it signed nothing) and read when the key
/// is pruned (``isDue(_:at:signed:)``): a site that issues no generation-2 tokens does not keep
/// its keys published for their 12 hours. Keys generated before the broker recorded lifetimes
/// (``KeyMetadata/signedLifetimesRecorded``) may have signed unrecorded tokens and keep the
/// worst case. The worst case, ``retention``, is the longest lifetime of a token family the
/// broker can issue: organization tokens (`access_lifetime`, the cap of every organization's
/// policy), admin sessions (`admin_session_lifetime`) and generation-2 tokens
/// (`generation2_access_lifetime`; GitHub logins cannot be switched off), plus the same leeways. The configuration cannot know what will be signed, so ``maximumPublishedKeys``
/// (`broker keys slots`, HAProxy's key slots) counts the worst case.
///
/// ```swift
/// let policy = KeyLifecyclePolicy(configuration)
/// let ring = try directory.rotate(algorithm: .rs256, policy: policy, force: false)
/// ```
public struct KeyLifecyclePolicy: Sendable, Equatable {
    /// Seconds a `next` key must have been published before a rotation may promote it.
    public var prepublication: Int
    /// Seconds a retired key stays published at most (whatever it signed).
    public var retention: Int
    /// `Cache-Control: max-age` of the JWKS and PEM; never longer than ``prepublication``.
    public var jwksMaxAge: Int
    /// Seconds between scheduled rotations; 0 disables them.
    public var rotationPeriod: Int
    /// Seconds a running server may take to notice a change of the ring on disk, and so to stop
    /// signing with a retired key or to unpublish one whose retention has passed.
    public var reloadInterval: Int
    /// Seconds verifiers accept a token past its `exp`.
    public var clockSkew: Int

    public init(
        prepublication: Int, retention: Int, jwksMaxAge: Int, rotationPeriod: Int = 0, reloadInterval: Int = 0,
        clockSkew: Int = 0
    ) {
        self.clockSkew = clockSkew
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
            reloadInterval: configuration.keyReloadInterval, clockSkew: configuration.clockSkew)
    }

    /// When the retired `key` may leave the JWKS: `retired_at` + the longest lifetime it signed
    /// + clock skew + reload interval, or its worst-case `retires_at` if earlier, if `signed`
    /// does not know the key, or if the key comes from a ring written before lifetimes were
    /// recorded (it may have signed without a record). `nil` for a key that is not retired.
    public func unpublishesAt(_ key: KeyMetadata, signed: SignedLifetimes) -> Date? {
        guard key.state == .retired else { return nil }
        let worst = key.retiresAt ?? .distantFuture
        guard key.signedLifetimesRecorded == true, let retiredAt = key.retiredAt, let longest = signed.longest[key.kid]
        else { return worst }
        return min(worst, retiredAt.addingTimeInterval(TimeInterval(longest + clockSkew + reloadInterval)))
    }

    /// Whether the retired `key` may leave the JWKS at `now`. What `signed` says holds only up
    /// to its ``SignedLifetimes/readAt``: a key due by its records is due once that moment has
    /// passed its date, so a record written after the read (by a server still signing with the
    /// key before it reloads) can never be missed.
    public func isDue(_ key: KeyMetadata, at now: Date, signed: SignedLifetimes) -> Bool {
        guard key.state == .retired else { return false }
        if let worst = key.retiresAt, worst <= now { return true }
        guard let date = unpublishesAt(key, signed: signed) else { return false }
        return date <= min(now, signed.readAt)
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
