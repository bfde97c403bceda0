import BrokerConnections
import BrokerCore
import Foundation
import Metrics
import Prometheus

/// Installs the Prometheus backend of swift-metrics, once per process (swift-metrics allows no
/// second bootstrap), and hands out its registry for `GET /metrics`.
///
/// ```swift
/// let registry = MetricsBootstrap.registry
/// let app = BrokerApplication.make(services: services, host: host, port: port, logger: logger, metrics: registry)
/// ```
enum MetricsBootstrap {
    /// The process's registry; reading it the first time bootstraps the metrics system and
    /// creates every documented series whose labels are known at zero, so that the first event
    /// of each is an increase a rule can see.
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        BrokerMetrics.registerEverySeries()
        ConnectionMetrics.registerEverySeries()
        return registry
    }()
}
