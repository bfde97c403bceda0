import ArgumentParser
import BrokerConnections
import BrokerCore
import BrokerCrypto
import BrokerServer
import GitHubClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the broker's HTTP server.")
    @OptionGroup var options: GlobalOptions
    @Option(help: "Address to listen on (host).") var host: String?
    @Option(help: "Port to listen on (port; 0 picks a free one).") var port: Int?

    func run() async throws {
        try await reportingErrors {
            var flags: [String: String] = [:]
            if let host { flags["host"] = host }
            if let port { flags["port"] = String(port) }
            let environment = try await CommandEnvironment.open(options, extraFlags: flags)
            let configuration = environment.configuration
            // Before the key ring exists, so that its first state is already counted.
            let metrics = MetricsBootstrap.registry
            let keyDirectory = KeyDirectory(path: configuration.keysDirectory, logger: environment.logger)
            let snapshot = try keyDirectory.loadOrInitialize(algorithm: configuration.signingAlgorithm)
            let keyRing = KeyRing(snapshot)
            let github: LibcurlGitHubClient
            do {
                github = try LibcurlGitHubClient(
                    configuration: .init(
                        apiURL: configuration.githubAPIURL, webURL: configuration.githubWebURL,
                        clientID: configuration.githubClientID,
                        connectTimeout: .seconds(configuration.githubConnectTimeout),
                        totalTimeout: .seconds(configuration.githubTimeout), userAgent: "broker",
                        proxy: configuration.githubProxy.isEmpty ? nil : configuration.githubProxy))
            } catch {
                throw ConfigurationError("GitHub client: \(error)")
            }
            try await Self.warnOfNameCollisions(environment.store, logger: environment.logger)
            let services = try await BrokerServices(
                configuration: configuration, store: environment.store, keyRing: keyRing,
                logger: environment.logger, githubAPI: github)
            let maintenance = KeyRingMaintenance(
                directory: keyDirectory, ring: keyRing, algorithm: configuration.signingAlgorithm,
                policy: services.keyPolicy, clock: SystemWallClock(), logger: environment.logger, audit: services.audit,
                signedLifetimes: { [services] kids in try await services.signedLifetimes(kids: kids) })
            let kid = snapshot.activeSigner(for: configuration.signingAlgorithm)?.kid ?? "-"
            let connections = try ConnectionLimits(configuration)
            // With a metrics listener of its own, the public one does not serve /metrics at all.
            let app = BrokerApplication.make(
                services: services, host: configuration.host, port: configuration.port, logger: environment.logger,
                metrics: configuration.metricsPort == nil ? metrics : nil, connections: connections
            ) { channel in
                let bound = channel.localAddress?.port ?? configuration.port
                Self.printBanner(configuration: configuration, port: bound, kid: kid)
            }
            // Reloads a ring changed by `broker keys`, rotates on schedule, prunes expired keys.
            let background = KeyRingMaintenanceService(
                maintenance: maintenance, interval: .seconds(configuration.keyReloadInterval))
            var listeners: [any Service] = [background]
            if configuration.pruneInterval > 0 {
                listeners.append(
                    StoragePruningService(pruner: services.pruner, interval: .seconds(configuration.pruneInterval)))
            }
            if let metricsPort = configuration.metricsPort {
                let metricsHost = configuration.metricsListenHost
                listeners.append(
                    BrokerApplication.makeMetrics(
                        registry: metrics, host: metricsHost, port: metricsPort, logger: environment.logger
                    ) { channel in
                        let bound = channel.localAddress?.port ?? metricsPort
                        FileHandle.standardOutput.write(Data("metrics served on http://\(metricsHost):\(bound)/metrics\n".utf8))
                    })
            }
            // Shut down last listed first: the public listener before the metrics one.
            listeners.append(app)
            do {
                try await Self.runUntilShutdown(
                    listeners, grace: .seconds(configuration.shutdownGrace), logger: environment.logger)
            } catch {
                try? await services.shutdown()
                throw error
            }
            try await services.shutdown()
            environment.logger.notice("stopped")
        }
    }

    /// Runs the services until SIGTERM or SIGINT, then shuts them down gracefully, last listed
    /// first: the HTTP server stops accepting connections and finishes the requests in flight,
    /// for at most `grace`, after which whatever is left is cancelled.
    static func runUntilShutdown(_ services: [any Service], grace: Duration, logger: Logger) async throws {
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = grace
        do {
            try await ServiceGroup(configuration: configuration).run()
        } catch is CancellationError {
            // Past the grace period the group cancels what is left; a service may report that
            // as an error, but the shutdown was asked for all the same.
            logger.warning("shutdown grace exceeded; what was still running was cancelled")
        }
    }

    /// Names from before the name profile that read like another's keep working; each start
    /// says so until an operator resolves them (`broker users collisions`, docs/operations.md).
    static func warnOfNameCollisions(_ store: any Store, logger: Logger) async throws {
        for collision in try await store.read({ tx in try await tx.nameCollisions() }) {
            logger.warning(
                "name collision: resolve with broker users collisions",
                metadata: [
                    "kind": "\(collision.kind.rawValue)", "name": "\(collision.name)",
                    "reads_like": "\(collision.readsLike ?? "(deleted)")",
                ])
        }
    }

    static func printBanner(configuration: BrokerConfiguration, port: Int, kid: String) {
        let me = CommandLine.arguments.first ?? "broker"
        let base = "http://\(configuration.host):\(port)"
        // Written unbuffered: whoever started us (a person, a test) reads it before we exit.
        FileHandle.standardOutput.write(Data(
            """
            broker listening on \(base)
              issuer \(configuration.issuer), data \(configuration.dataDirectory), keys \(configuration.keysDirectory)
              signing \(configuration.signingAlgorithm.rawValue) with kid \(kid)

            First steps (in another terminal):
              \(me) users add alice                 # asks for a password (12+ characters)
              \(me) orgs add org1
              \(me) members add org1 alice
              curl -s \(base)/api/org_token/ -H 'Content-Type: application/json' \\
                   -d '{"username":"alice","password":"<password>","org_name":"org1"}'

            """.utf8))
    }
}
