import Foundation
import XCTest
import Yams

/// `deploy/kubernetes/`, parsed (this machine has no cluster): two replicas probed on /readyz and
/// /livez at the broker's port, the KEK and the database password as Secret files the
/// `_FILE` settings point at, no secret value in the manifests, a disruption budget, a grace
/// period above `shutdown_grace`, and a container that cannot gain privileges.
final class KubernetesManifestTests: XCTestCase {
    private var documents: [[String: Any]] = []

    override func setUpWithError() throws {
        let directory = DeployRecipes.url("kubernetes")
        for file in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() where file.hasSuffix(".yaml") {
            for document in try Yams.load_all(yaml: try DeployRecipes.text("kubernetes/\(file)")) {
                documents.append(YAMLValue.map(document))
            }
        }
    }

    private func one(_ kind: String) throws -> [String: Any] {
        let found = documents.filter { YAMLValue.string($0["kind"]) == kind }
        XCTAssertEqual(found.count, 1, kind)
        return try XCTUnwrap(found.first, kind)
    }

    private var pod: [String: Any] { get throws { YAMLValue.map(YAMLValue.at(try one("Deployment"), "spec.template.spec")) } }

    private var broker: [String: Any] {
        get throws {
            let containers = YAMLValue.list(try pod["containers"]).map(YAMLValue.map)
            return try XCTUnwrap(containers.first { YAMLValue.string($0["name"]) == "broker" })
        }
    }

    private var environment: [String: [String: Any]] {
        get throws {
            Dictionary(uniqueKeysWithValues: YAMLValue.list(try broker["env"]).map(YAMLValue.map).compactMap { variable in
                YAMLValue.string(variable["name"]).map { ($0, variable) }
            })
        }
    }

    /// A container port given by number or by name, as a number.
    private func port(_ value: Any?) throws -> Int? {
        if let number = YAMLValue.int(value) { return number }
        let ports = YAMLValue.list(try broker["ports"]).map(YAMLValue.map)
        return ports.first { YAMLValue.string($0["name"]) == YAMLValue.string(value) }.flatMap { YAMLValue.int($0["containerPort"]) }
    }

    func testTwoReplicasProbedOnReadyzAndLivezAtTheBrokersPort() throws {
        let deployment = try one("Deployment")
        XCTAssertEqual(YAMLValue.int(YAMLValue.at(deployment, "spec.replicas")), 2)
        XCTAssertEqual(YAMLValue.int(YAMLValue.at(deployment, "spec.strategy.rollingUpdate.maxUnavailable")), 0)
        let container = try broker
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/livez")] {
            let get = YAMLValue.map(YAMLValue.at(container[probe], "httpGet"))
            XCTAssertEqual(YAMLValue.string(get["path"]), path, probe)
            XCTAssertEqual(try port(get["port"]), DeployRecipes.defaultPort, "\(probe) at the port broker serve listens on")
        }
        // A slow first start (keys, migrations) must not be taken for a dead process.
        XCTAssertEqual(YAMLValue.string(YAMLValue.at(container["startupProbe"], "httpGet.path")), "/livez")

        let service = try one("Service")
        let labels = YAMLValue.map(YAMLValue.at(deployment, "spec.template.metadata.labels")).compactMapValues(YAMLValue.string)
        let selector = YAMLValue.map(YAMLValue.at(service, "spec.selector")).compactMapValues(YAMLValue.string)
        XCTAssertFalse(selector.isEmpty)
        XCTAssertTrue(selector.allSatisfy { labels[$0.key] == $0.value }, "the Service selects the pods: \(selector) \(labels)")
        let servicePorts = YAMLValue.list(YAMLValue.at(service, "spec.ports")).map(YAMLValue.map)
        XCTAssertTrue(try servicePorts.allSatisfy { try port($0["targetPort"]) == DeployRecipes.defaultPort }, "\(servicePorts)")
    }

    func testDisruptionBudgetKeepsOneReplica() throws {
        let budget = try one("PodDisruptionBudget")
        XCTAssertEqual(YAMLValue.int(YAMLValue.at(budget, "spec.minAvailable")), 1)
        let labels = YAMLValue.map(YAMLValue.at(try one("Deployment"), "spec.template.metadata.labels")).compactMapValues(YAMLValue.string)
        let selector = YAMLValue.map(YAMLValue.at(budget, "spec.selector.matchLabels")).compactMapValues(YAMLValue.string)
        XCTAssertFalse(selector.isEmpty)
        XCTAssertTrue(selector.allSatisfy { labels[$0.key] == $0.value }, "the budget covers the broker's pods")
    }

    func testTheKeyEncryptionKeyAndDatabasePasswordAreSecretFilesAndNoSecretIsInline() throws {
        let pod = try pod
        let volumes = Dictionary(uniqueKeysWithValues: YAMLValue.list(pod["volumes"]).map(YAMLValue.map).compactMap { volume in
            YAMLValue.string(volume["name"]).map { ($0, volume) }
        })
        let mounts = YAMLValue.list(try broker["volumeMounts"]).map(YAMLValue.map)
        let environment = try environment
        for variable in ["BROKER_KEY_ENCRYPTION_KEY_FILE", "BROKER_DATABASE_PASSWORD_FILE"] {
            let path = try XCTUnwrap(YAMLValue.string(environment[variable]?["value"]), variable)
            let mount = try XCTUnwrap(
                mounts.first { YAMLValue.string($0["mountPath"]).map { path.hasPrefix($0 + "/") } == true }, "\(variable): \(path) is mounted")
            let mountPath = try XCTUnwrap(YAMLValue.string(mount["mountPath"]))
            let volume = try XCTUnwrap(volumes[YAMLValue.string(mount["name"]) ?? ""])
            let secret = YAMLValue.map(volume["secret"])
            XCTAssertNotNil(YAMLValue.string(secret["secretName"]), "\(variable) comes from a Secret")
            XCTAssertNotEqual(YAMLValue.string(secret["optional"]), "true", variable)
            // The file is a key of the Secret (by its item path, or its own name).
            let file = String(path.dropFirst(mountPath.count + 1))
            let items = YAMLValue.list(secret["items"]).map(YAMLValue.map)
            XCTAssertTrue(items.isEmpty || items.contains { YAMLValue.string($0["path"]) == file }, "\(variable): \(file) in \(items)")
        }
        XCTAssertNotNil(YAMLValue.at(environment["BROKER_DATABASE_URL"], "valueFrom.secretKeyRef"), "the URL names the database's user")
        XCTAssertTrue(documents.allSatisfy { YAMLValue.string($0["kind"]) != "Secret" }, "no Secret in the manifests: created by hand")
        for (name, variable) in environment where name.firstMatch(of: /(PASSWORD|SECRET|TOKEN|KEY|URL)$/) != nil {
            XCTAssertNil(variable["value"], "\(name) is written inline")
        }
    }

    func testGracePeriodOutlastsThePreStopPauseAndTheDrain() throws {
        let pod = try pod
        let grace = try XCTUnwrap(YAMLValue.int(pod["terminationGracePeriodSeconds"]))
        let pause = YAMLValue.list(YAMLValue.at(try broker["lifecycle"], "preStop.exec.command")).compactMap(YAMLValue.string)
        let paused = pause.first == "sleep" ? Int(pause.last ?? "") ?? 0 : 0
        XCTAssertGreaterThan(grace, paused + DeployRecipes.defaultShutdownGrace)
        XCTAssertNil(try environment["BROKER_SHUTDOWN_GRACE"], "the grace period is computed for the default")
    }

    func testContainerRunsUnprivilegedOnAReadOnlyRoot() throws {
        let pod = try pod
        XCTAssertEqual(YAMLValue.string(YAMLValue.at(pod, "securityContext.runAsNonRoot")), "true")
        XCTAssertNotEqual(YAMLValue.int(YAMLValue.at(pod, "securityContext.runAsUser")), 0)
        let context = YAMLValue.map(try broker["securityContext"])
        XCTAssertEqual(YAMLValue.string(context["readOnlyRootFilesystem"]), "true")
        XCTAssertEqual(YAMLValue.string(context["allowPrivilegeEscalation"]), "false")
        XCTAssertEqual(YAMLValue.list(YAMLValue.at(context, "capabilities.drop")).compactMap(YAMLValue.string), ["ALL"])
        // A read-only root: the state directory must be a volume (each replica its own).
        let mounts = YAMLValue.list(try broker["volumeMounts"]).map(YAMLValue.map)
        let state = try XCTUnwrap(mounts.first { YAMLValue.string($0["mountPath"]) == "/var/lib/broker" })
        let volume = YAMLValue.list(pod["volumes"]).map(YAMLValue.map).first { YAMLValue.string($0["name"]) == YAMLValue.string(state["name"]) }
        XCTAssertNotNil(volume?["emptyDir"], "an empty data directory per replica")
        let resources = YAMLValue.map(try broker["resources"])
        XCTAssertNotNil(YAMLValue.at(resources, "requests.cpu"))
        XCTAssertNotNil(YAMLValue.at(resources, "requests.memory"))
        XCTAssertNotNil(YAMLValue.at(resources, "limits.memory"))
    }

    func testKustomizationListsEveryManifest() throws {
        let kustomization = YAMLValue.map(try Yams.load(yaml: try DeployRecipes.text("kubernetes/kustomization.yaml")))
        let listed = Set(YAMLValue.list(kustomization["resources"]).compactMap(YAMLValue.string))
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: DeployRecipes.url("kubernetes").path)
            .filter { $0.hasSuffix(".yaml") && $0 != "kustomization.yaml" })
        XCTAssertEqual(listed, files)
    }
}
