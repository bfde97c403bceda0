import BrokerConnections
import BrokerCore

extension ConnectionLimits {
    /// The `http_*_timeout` and `max_connections*` settings; the caps left unset are derived
    /// from the descriptor limit.
    /// - Throws: ``ConfigurationError`` when the per-address cap exceeds the total.
    public init(_ configuration: BrokerConfiguration, descriptorLimit: Int = Self.descriptorLimit) throws {
        self.init(descriptorLimit: descriptorLimit)
        headerTimeout = .seconds(configuration.httpHeaderTimeout)
        bodyTimeout = .seconds(configuration.httpBodyTimeout)
        idleTimeout = .seconds(configuration.httpIdleTimeout)
        if let total = configuration.maxConnections {
            maximumConnections = total
            maximumConnectionsPerAddress = Self.defaultMaximumConnectionsPerAddress(maximumConnections: total)
        }
        if let perAddress = configuration.maxConnectionsPerAddress { maximumConnectionsPerAddress = perAddress }
        if let problem {
            throw ConfigurationError("max_connections, max_connections_per_address: \(problem)")
        }
    }
}
