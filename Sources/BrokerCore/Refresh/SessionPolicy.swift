/// The lifetimes that bound what a login yields (all in seconds).
public struct SessionPolicy: Sendable, Equatable {
    public var accessLifetime: Int
    public var refreshLifetime: Int
    /// No refresh family outlives its login by more than this.
    public var sessionMaxLifetime: Int
    /// How long after a refresh token's first use a second use still gets the same successor
    /// (two requests racing after a network retry) instead of revoking the family, provided that
    /// successor has not been used itself.
    public var refreshReuseGrace: Int

    public init(accessLifetime: Int, refreshLifetime: Int, sessionMaxLifetime: Int, refreshReuseGrace: Int) {
        self.accessLifetime = accessLifetime
        self.refreshLifetime = refreshLifetime
        self.sessionMaxLifetime = sessionMaxLifetime
        self.refreshReuseGrace = refreshReuseGrace
    }

    public init(_ configuration: BrokerConfiguration) {
        self.init(
            accessLifetime: configuration.accessLifetime, refreshLifetime: configuration.refreshLifetime,
            sessionMaxLifetime: configuration.sessionMaxLifetime, refreshReuseGrace: configuration.refreshReuseGrace)
    }
}
