import ArgumentParser
import BrokerConnections
import BrokerCore
import BrokerCrypto
import BrokerSQLite
import BrokerPortal
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
            let environment = try await CommandEnvironment.open(options, extraFlags: flags, use: .serving)
            defer { environment.servingLock?.release() }
            // Every way out closes the store (and, once they exist, the services around it): a
            // store released open warns, and that warning would stand before the error that
            // says what failed.
            var close: () async throws -> Void = { try await environment.store.close() }
            do {
                let configuration = environment.configuration
                // Before the key ring exists, so that its first state is already counted.
                let metrics = MetricsBootstrap.registry
                let keyStorage = try environment.keyRingStorage()
                let snapshot = try await keyStorage.loadOrInitializeRing(algorithm: configuration.signingAlgorithm)
                let keyRing = KeyRing(snapshot)
                // Read at start: a missing or empty file stops here, not at the first sign-in.
                let githubClientSecret = try configuration.githubClientSecretValue()
                let github: LibcurlGitHubClient
                do {
                    github = try LibcurlGitHubClient(
                        configuration: .init(
                            apiURL: configuration.githubAPIURL, webURL: configuration.githubWebURL,
                            clientID: configuration.githubClientID, clientSecret: githubClientSecret,
                            connectTimeout: .seconds(configuration.githubConnectTimeout),
                            totalTimeout: .seconds(configuration.githubTimeout), userAgent: "broker",
                            proxy: configuration.githubProxy.isEmpty ? nil : configuration.githubProxy))
                } catch {
                    throw ConfigurationError("GitHub client: \(error)")
                }
                try await Self.warnOfNameCollisions(environment.store, logger: environment.logger)
                if configuration.portalEnabled, configuration.portalInsecureCookies {
                    environment.logger.warning(
                        "portal_insecure_cookies is on: the portal's cookies are sent over plain http (development only)")
                }
                let services = try await BrokerServices(
                    configuration: configuration, store: environment.store, keyRing: keyRing,
                    logger: environment.logger, githubAPI: github, keyStorage: keyStorage)
                // One HTTP client for the scaling calls the broker passes on, closed on every way out.
                let provisioner = ProvisionerClient(configuration: configuration)
                close = {
                    try? await provisioner?.shutdown()
                    try await services.shutdown()
                }
                try await services.start()
                let maintenance = KeyRingMaintenance(
                    storage: keyStorage, ring: keyRing, algorithm: configuration.signingAlgorithm,
                    policy: services.keyPolicy, clock: SystemWallClock(), logger: environment.logger, audit: services.audit,
                    signedLifetimes: { [services] kids in try await services.signedLifetimes(kids: kids) })
                let kid = snapshot.activeSigner(for: configuration.signingAlgorithm)?.kid ?? "-"
                // After start-up, which may have created the bootstrap admin.
                let hasAccounts = try await environment.store.read { tx in try await !tx.users(afterID: 0, limit: 1).isEmpty }
                let firstSteps = hasAccounts ? nil : FirstSteps(options: options, environment: ProcessInfo.processInfo.environment)
                let connections = try ConnectionLimits(configuration)
                // With a metrics listener of its own, the public one does not serve /metrics at all.
                let app = NamedListener(host: configuration.host, port: configuration.port) { onRunning in
                    BrokerApplication.make(
                        services: services, host: configuration.host, port: configuration.port, logger: environment.logger,
                        metrics: configuration.metricsPort == nil ? metrics : nil, connections: connections,
                        extraRoutes: configuration.portalEnabled ? [PortalRoutes(services: services)] : [],
                        provisioner: provisioner
                    ) { channel in
                        onRunning()
                        let bound = channel.localAddress?.port ?? configuration.port
                        Self.printBanner(configuration: configuration, port: bound, kid: kid, firstSteps: firstSteps)
                    }
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
                        NamedListener(role: "metrics", host: metricsHost, port: metricsPort) { onRunning in
                            BrokerApplication.makeMetrics(
                                registry: metrics, host: metricsHost, port: metricsPort, logger: environment.logger
                            ) { channel in
                                onRunning()
                                let bound = channel.localAddress?.port ?? metricsPort
                                FileHandle.standardOutput.write(
                                    Data("metrics served on http://\(metricsHost):\(bound)/metrics\n".utf8))
                            }
                        })
                }
                // Shut down last listed first: the public listener before the metrics one.
                listeners.append(app)
                try await Self.runUntilShutdown(
                    listeners, grace: .seconds(configuration.shutdownGrace), logger: environment.logger)
            } catch {
                try? await close()
                throw error
            }
            try await close()
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

    /// Says where the broker listens and, for a store without accounts, how to create the first
    /// admin and a first user (a populated store has an operator who knows).
    static func printBanner(
        configuration: BrokerConfiguration, port: Int, kid: String, firstSteps: FirstSteps?
    ) {
        let base = "http://\(configuration.host):\(port)"
        var banner = """
            broker listening on \(base)
              issuer \(configuration.issuer), data \(configuration.dataDirectory), keys \(configuration.keysDirectory)
              signing \(configuration.signingAlgorithm.rawValue) with kid \(kid)

            """
        if configuration.portalEnabled { banner += "  portal \(configuration.issuer)/signin (pages for people: docs/portal.md)\n" }
        if !configuration.provisionerURL.isEmpty {
            banner += "  scaling calls of generation-1 clients forwarded to \(configuration.provisionerURL)\n"
        }
        if let firstSteps { banner += "\n" + firstSteps.text(base: base) }
        // Written unbuffered: whoever started us (a person, a test) reads it before we exit.
        FileHandle.standardOutput.write(Data(banner.utf8))
    }

    /// The commands that bring an empty store to a first token, spelled to reach this store
    /// from another terminal: this executable, with the options that chose the configuration.
    struct FirstSteps {
        let executable: String
        /// Options come after the subcommand (`broker users add NAME --config FILE`).
        let options: String

        init(options given: GlobalOptions, environment: [String: String]) {
            // Absolute: the other terminal may be in another directory.
            func absolute(_ path: String) -> String {
                path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
            }
            // A name found on PATH stays a name; a relative path becomes absolute.
            let me = CommandLine.arguments.first ?? "broker"
            executable = Self.quoted(me.contains("/") ? absolute(me) : me)
            var words: [String] = []
            if let config = given.config ?? environment[EnvironmentNames.configurationFile] { words += ["--config", absolute(config)] }
            // Set by the environment, they are repeated too: the other terminal may not export it.
            if let dataDir = given.dataDir ?? environment[EnvironmentNames.variable(for: "data_dir")] {
                words += ["--data-dir", absolute(dataDir)]
            }
            if let keysDir = given.keysDir ?? environment[EnvironmentNames.variable(for: "keys_dir")] {
                words += ["--keys-dir", absolute(keysDir)]
            }
            options = words.map(Self.quoted).joined(separator: " ")
        }

        func run(_ subcommand: String) -> String {
            [executable, subcommand, options].filter { !$0.isEmpty }.joined(separator: " ")
        }

        func text(base: String) -> String {
            """
            First steps (the store has no accounts yet; in another terminal):
              \(run("users add admin --admin"))
                  # the first admin, for the admin API: asks for a password (12+ characters)
              printf '%s\\n' "$ADMIN_PASSWORD" | \(run("users add admin --admin --password-stdin"))
                  # the same from a script: the password as one line on standard input
              \(run("users add alice"))
              \(run("orgs add org1"))
              \(run("members add org1 alice"))
              curl -s \(base)/api/org_token/ -H 'Content-Type: application/json' \\
                   -d '{"username":"alice","password":"<password>","org_name":"org1"}'

            """
        }

        static func quoted(_ word: String) -> String {
            let plain = word.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_./=:@%+,".contains($0)) }
            return plain && !word.isEmpty ? word : "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
        }
    }
}
