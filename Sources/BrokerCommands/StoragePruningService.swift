import BrokerCore
import ServiceLifecycle

/// Storage pruning as a service of `broker serve`'s group: every `interval` it deletes what the
/// store no longer needs (``StoragePruner``), and stops when the group shuts down gracefully.
///
/// ```swift
/// let group = ServiceGroup(services: [StoragePruningService(pruner: services.pruner, interval: .seconds(600)), app], logger: logger)
/// ```
struct StoragePruningService: Service, CustomStringConvertible {
    let pruner: StoragePruner
    let interval: Duration

    /// How the service group's log lines name it.
    var description: String { "StoragePruning" }

    func run() async throws {
        let (pruner, interval) = (self.pruner, self.interval)
        await cancelWhenGracefulShutdown { await pruner.run(interval: interval) }
    }
}
