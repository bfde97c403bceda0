import Foundation
import XCTest
import Yams

/// `deploy/compose/compose.yaml` and the configurations it mounts, checked without a container
/// engine: the file parsed (anchors and merge keys resolved, as compose does), its services
/// checked for what an installation of stateless replicas needs, and the balancer's and the
/// gateway's configurations checked by the real HAProxy and nginx.
final class ComposeRecipeTests: XCTestCase {
    private var compose: [String: Any] = [:]
    private var services: [String: [String: Any]] = [:]

    override func setUpWithError() throws {
        compose = YAMLValue.map(try Yams.load(yaml: try DeployRecipes.text("compose/compose.yaml")))
        services = YAMLValue.map(compose["services"]).mapValues(YAMLValue.map)
    }

    private func command(_ service: [String: Any]) -> [String] { YAMLValue.list(service["command"]).compactMap(YAMLValue.string) }

    /// Services running `broker serve`: the broker image, no other command.
    private var replicas: [String: [String: Any]] {
        services.filter { _, service in
            YAMLValue.string(service["image"]) == "broker:local" && (command(service).first ?? "serve") == "serve"
        }
    }

    private func environment(_ service: [String: Any]) -> [String: String] {
        YAMLValue.map(service["environment"]).compactMapValues(YAMLValue.string)
    }

    private func named(_ prefix: String) -> [String: [String: Any]] {
        services.filter { YAMLValue.string($0.value["image"])?.hasPrefix(prefix) == true }
    }

    func testTwoReplicasEachWithAnEmptyDataVolumeOfItsOwnShareOneDatabase() throws {
        XCTAssertEqual(replicas.count, 2, "\(replicas.keys.sorted())")
        XCTAssertEqual(named("postgres:").count, 1, "one PostgreSQL")
        let declared = Set(YAMLValue.map(compose["volumes"]).keys)
        var dataVolumes: [String] = []
        for (name, replica) in replicas {
            let mounts = YAMLValue.list(replica["volumes"]).compactMap(YAMLValue.string)
            let state = mounts.filter { $0.hasSuffix(":/var/lib/broker") }.map { String($0.split(separator: ":")[0]) }
            XCTAssertEqual(state.count, 1, "\(name): \(mounts)")
            XCTAssertTrue(state.allSatisfy(declared.contains), "\(name): a named volume, \(state)")
            dataVolumes += state
            XCTAssertGreaterThan(
                DeployRecipes.durationSeconds(YAMLValue.string(replica["stop_grace_period"]) ?? "10s") ?? 0,
                DeployRecipes.defaultShutdownGrace, "\(name): stop_grace_period above shutdown_grace")
            XCTAssertEqual(YAMLValue.string(YAMLValue.at(replica, "build.dockerfile")), "deploy/container/Containerfile", name)
        }
        XCTAssertEqual(Set(dataVolumes).count, dataVolumes.count, "replicas share no data directory: \(dataVolumes)")
        let urls = Set(replicas.values.map { environment($0)["BROKER_DATABASE_URL"] ?? "" })
        XCTAssertEqual(urls.count, 1, "one database for all: \(urls)")
        let url = try XCTUnwrap(urls.first)
        let database = try XCTUnwrap(named("postgres:").keys.first)
        XCTAssertTrue(url.hasPrefix("postgres://") && url.contains("@\(database):5432/"), url)
        XCTAssertNil(url.firstMatch(of: /:\/\/[^\/@:]+:[^\/@]*@/), "no password in the URL: \(url)")
        XCTAssertEqual(Set(replicas.values.map { environment($0)["BROKER_ISSUER"] ?? "" }).count, 1, "one issuer")
    }

    func testSecretsReachTheReplicasAsFilesAndAreNeverWrittenInline() throws {
        let declared = YAMLValue.map(compose["secrets"]).mapValues(YAMLValue.map)
        for (name, replica) in replicas {
            let environment = environment(replica)
            let mounted = Set(YAMLValue.list(replica["secrets"]).compactMap(YAMLValue.string))
            for variable in ["BROKER_KEY_ENCRYPTION_KEY_FILE", "BROKER_DATABASE_PASSWORD_FILE"] {
                let path = try XCTUnwrap(environment[variable], "\(name): \(variable)")
                let secret = try XCTUnwrap(path.wholeMatch(of: /\/run\/secrets\/([\w-]+)/), "\(name): \(path)").1
                XCTAssertTrue(mounted.contains(String(secret)), "\(name) mounts \(secret)")
                let file = try XCTUnwrap(YAMLValue.string(declared[String(secret)]?["file"]), "\(secret) is a file")
                XCTAssertTrue(file.hasPrefix("./secrets/"), file)
            }
        }
        // The secrets directory keeps its files out of git.
        XCTAssertEqual(try DeployRecipes.text("compose/secrets/.gitignore").split(separator: "\n").filter { !$0.hasPrefix("#") }, ["*", "!.gitignore"])
        for (name, service) in services {
            for variable in environment(service).keys where variable.firstMatch(of: /(PASSWORD|SECRET|TOKEN|KEY)$/) != nil {
                XCTFail("\(name): \(variable) holds a secret inline; give its _FILE variable a secret file instead")
            }
        }
    }

    func testBalancerChecksReadyzOnEveryReplicaAndHAProxyAcceptsItsConfiguration() throws {
        let balancers = named("haproxy:")
        XCTAssertEqual(balancers.count, 1)
        let balancer = try XCTUnwrap(balancers.values.first)
        XCTAssertTrue(YAMLValue.list(balancer["volumes"]).compactMap(YAMLValue.string).contains { $0.hasPrefix("./haproxy.cfg:") })
        let configuration = try DeployRecipes.text("compose/haproxy.cfg")
        XCTAssertTrue(configuration.contains("http-check send meth GET uri /readyz "), "readiness, not liveness")
        XCTAssertTrue(configuration.contains("http-check expect status 200"))
        let servers = configuration.matches(of: /\n\s*server\s+(\S+)\s+(\S+):(\d+)/).map { (String($0.2), Int($0.3)) }
        XCTAssertEqual(Set(servers.map(\.0)), Set(replicas.keys), "the balancer names every replica")
        XCTAssertTrue(servers.allSatisfy { $0.1 == DeployRecipes.defaultPort }, "\(servers)")
        let trusted = Set(replicas.values.map { environment($0)["BROKER_TRUSTED_PROXIES"] ?? "" })
        let address = YAMLValue.string(YAMLValue.at(YAMLValue.map(balancer["networks"]), "backend.ipv4_address"))
        XCTAssertEqual(trusted, [address ?? "-"], "the replicas trust the balancer's X-Forwarded-For, and only it")

        guard let haproxy = DeployRecipes.tool("haproxy") else { throw XCTSkip("haproxy is not installed (scripts/install-deps.sh test)") }
        let check = try DeployRecipes.run(haproxy, ["-c", "-f", DeployRecipes.url("compose/haproxy.cfg").path])
        XCTAssertEqual(check.status, 0, check.output)
        // The replicas' names resolve only inside the engine's network.
        let warnings = check.output.split(separator: "\n").filter { $0.contains("[WARNING]") }
        XCTAssertTrue(warnings.allSatisfy { $0.contains("could not resolve address") }, check.output)
    }

    func testClusterGatewayAsksTheSidecarWhichFetchesTheBrokersKeysFromLoopback() throws {
        let sidecars = services.filter { command($0.value).first == "gateway" }
        XCTAssertEqual(sidecars.count, 1)
        let sidecar = try XCTUnwrap(sidecars.values.first)
        let arguments = command(sidecar)
        func flag(_ name: String) -> String? { arguments.firstIndex(of: name).map { arguments[$0 + 1] } }
        let host = try XCTUnwrap(YAMLValue.string(sidecar["network_mode"])?.wholeMatch(of: /service:(.+)/)?.1)
        let nginx = try XCTUnwrap(services[String(host)], "the sidecar shares the nginx service's network")
        XCTAssertTrue(YAMLValue.string(nginx["image"])?.hasPrefix("nginx:") == true)
        XCTAssertTrue(YAMLValue.list(nginx["volumes"]).compactMap(YAMLValue.string).contains { $0.hasPrefix("./nginx.conf:") })
        XCTAssertEqual(flag("--issuer"), environment(try XCTUnwrap(replicas.values.first))["BROKER_ISSUER"])
        let jwks = try XCTUnwrap(flag("--jwks"))
        let relay = try XCTUnwrap(jwks.wholeMatch(of: /http:\/\/127\.0\.0\.1:(\d+)\/\.well-known\/jwks\.json/), jwks).1
        let configuration = try DeployRecipes.text("compose/nginx.conf")
        XCTAssertTrue(configuration.contains("listen 127.0.0.1:\(relay);"), "nginx relays the JWKS on loopback")
        XCTAssertTrue(configuration.contains("server 127.0.0.1:\(try XCTUnwrap(flag("--port")));"), "nginx asks the sidecar")
        XCTAssertTrue(configuration.contains("auth_request /_broker_auth;"))
        let balancer = try XCTUnwrap(named("haproxy:").keys.first)
        XCTAssertTrue(configuration.contains("server \(balancer):\(DeployRecipes.defaultPort);"), "keys from the balanced replicas")

        guard let nginxTool = DeployRecipes.tool("nginx") else { throw XCTSkip("nginx is not installed (scripts/install-deps.sh test)") }
        // nginx resolves upstream names when it reads its configuration: put the services on
        // loopback for the check, as the engine's DNS would resolve them.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("compose-nginx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var resolved = configuration
        for service in services.keys { resolved = resolved.replacingOccurrences(of: "server \(service):", with: "server 127.0.0.1:") }
        try resolved.write(to: directory.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        let check = try DeployRecipes.run(nginxTool, [
            "-t", "-c", directory.appendingPathComponent("nginx.conf").path, "-e", "/dev/stderr",
            "-g", "pid \(directory.path)/nginx.pid;",
        ])
        XCTAssertEqual(check.status, 0, check.output)
    }
}
