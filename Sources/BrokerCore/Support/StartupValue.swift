import BrokerSync

/// What a service holds when it needs something only start-up can give it (a server secret read
/// from the store): empty when the service is built, filled once by ``BrokerServices/start()``.
/// Reading it before then throws ``ServicesNotStarted`` instead of working with a missing value.
///
/// ```swift
/// let secret = StartupValue<[UInt8]>("refresh_successor_hmac")
/// try secret.get()                 // throws ServicesNotStarted
/// secret.set(try await RefreshTokenRotation.loadSecret(from: store))
/// try secret.get()                 // the secret
/// ```
public final class StartupValue<Value: Sendable>: Sendable {
    /// What the value is, for the error when it is missing.
    public let name: String
    private let stored: Locked<Value?>

    /// An empty slot, filled by start-up.
    public init(_ name: String) {
        self.name = name
        stored = Locked(nil)
    }

    /// A slot that already holds `value` (tests, tools that load it themselves).
    public init(_ name: String, value: Value) {
        self.name = name
        stored = Locked(value)
    }

    public func set(_ value: Value) {
        stored.withLock { $0 = value }
    }

    /// Whether start-up has filled the slot.
    public var isLoaded: Bool { stored.withLock { $0 != nil } }

    /// - Throws: ``ServicesNotStarted`` while the slot is empty.
    public func get() throws -> Value {
        guard let value = stored.withLock({ $0 }) else { throw ServicesNotStarted(missing: name) }
        return value
    }
}

/// A service was used before ``BrokerServices/start()`` loaded what it needs: a programming
/// error (the caller skipped start-up), answered 500 and logged, never worked around.
public struct ServicesNotStarted: Error, Sendable, Equatable, CustomStringConvertible {
    /// The missing start-up value.
    public var missing: String

    public init(missing: String) {
        self.missing = missing
    }

    public var description: String {
        "the broker's services are used before start-up (BrokerServices.start()) loaded \(missing)"
    }
}
