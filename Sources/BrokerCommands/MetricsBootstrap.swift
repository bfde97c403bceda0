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
    /// The process's registry; reading it the first time bootstraps the metrics system.
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()
}
