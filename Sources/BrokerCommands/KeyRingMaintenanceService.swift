import BrokerCore
import ServiceLifecycle

/// Key-ring maintenance as a service of `broker serve`'s group: it runs every `interval` and
/// stops when the group shuts down gracefully (after the HTTP server, which the group stops
/// first because it is listed last).
///
/// ```swift
/// let group = ServiceGroup(services: [KeyRingMaintenanceService(maintenance: m, interval: .seconds(2)), app], logger: logger)
/// ```
struct KeyRingMaintenanceService: Service, CustomStringConvertible {
    let maintenance: KeyRingMaintenance
    let interval: Duration

    /// How the service group's log lines name it.
    var description: String { "KeyRingMaintenance" }

    func run() async throws {
        let (maintenance, interval) = (self.maintenance, self.interval)
        await cancelWhenGracefulShutdown { await maintenance.run(interval: interval) }
    }
}
