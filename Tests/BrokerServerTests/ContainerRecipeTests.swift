import Foundation
import XCTest
import Yams

/// `deploy/container/Containerfile`, read as text (this machine has no container engine): a
/// Swift build stage with exactly `make run`'s packages, a slim runtime stage with only their
/// runtime libraries, an unprivileged user, the state volume, a health check on /livez.
final class ContainerRecipeTests: XCTestCase {
    struct Stage {
        var from: String
        var name: String?
        /// (instruction in upper case, its arguments), continuation lines joined.
        var instructions: [(String, String)]

        func all(_ instruction: String) -> [String] { instructions.filter { $0.0 == instruction }.map(\.1) }
    }

    /// The `ARG`s before the first `FROM` (their defaults), and the stages.
    private func parse() throws -> (arguments: [String: String], stages: [Stage]) {
        var logical: [String] = []
        var pending = ""
        for raw in try DeployRecipes.text("container/Containerfile").split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if pending.isEmpty && (line.isEmpty || line.hasPrefix("#")) { continue }
            if line.hasSuffix("\\") {
                pending += line.dropLast() + " "
            } else {
                logical.append(pending + line)
                pending = ""
            }
        }
        var arguments: [String: String] = [:]
        var stages: [Stage] = []
        for line in logical {
            let parts = line.split(separator: " ", maxSplits: 1)
            let instruction = parts[0].uppercased()
            let rest = parts.count > 1 ? String(parts[1]) : ""
            if instruction == "FROM" {
                let words = rest.split(separator: " ").map(String.init)
                stages.append(Stage(from: words[0], name: words.count == 3 && words[1].uppercased() == "AS" ? words[2] : nil, instructions: []))
            } else if stages.isEmpty {
                if instruction == "ARG", let equals = rest.firstIndex(of: "=") {
                    arguments[String(rest[..<equals])] = String(rest[rest.index(after: equals)...])
                }
            } else {
                stages[stages.count - 1].instructions.append((instruction, rest))
            }
        }
        return (arguments, stages)
    }

    /// `${NAME}` of a FROM line, resolved with the ARG defaults.
    private func image(_ from: String, _ arguments: [String: String]) -> String {
        guard let match = from.wholeMatch(of: /\$\{(\w+)\}/) else { return from }
        return arguments[String(match.1)] ?? from
    }

    /// The packages of every `apt-get install` in a stage.
    private func installedPackages(_ stage: Stage) -> Set<String> {
        var packages: Set<String> = []
        for run in stage.all("RUN") {
            for command in run.components(separatedBy: "&&") {
                let words = command.split(separator: " ").map(String.init)
                guard let install = words.firstIndex(of: "install"), words[..<install].contains("apt-get") else { continue }
                packages.formUnion(words[(install + 1)...].filter { !$0.hasPrefix("-") })
            }
        }
        return packages
    }

    func testBuildStageUsesSwiftAndExactlyTheRunPackagesAndBuildsTheReleaseBinary() throws {
        let (arguments, stages) = try parse()
        XCTAssertGreaterThanOrEqual(stages.count, 2, "multi-stage")
        let build = try XCTUnwrap(stages.first)
        XCTAssertTrue(image(build.from, arguments).hasPrefix("swift:6."), image(build.from, arguments))
        let runs = build.all("RUN").joined(separator: "\n")
        // The same script `make run` runs, so the image can never lack a package the Makefile adds.
        XCTAssertTrue(runs.contains("scripts/install-deps.sh run"), runs)
        XCTAssertTrue(runs.contains("swift build -c release --product broker"), runs)
        XCTAssertTrue(runs.contains("--static-swift-stdlib"), "the runtime stage has no Swift runtime: \(runs)")
    }

    func testRuntimeStageInstallsTheRuntimeHalfOfEveryRunPackageAndNoDevelopmentPackage() throws {
        let (arguments, stages) = try parse()
        let runtime = try XCTUnwrap(stages.last)
        let base = image(runtime.from, arguments)
        XCTAssertTrue(base.hasPrefix("debian:") && base.hasSuffix("-slim"), base)
        let installed = installedPackages(runtime)
        XCTAssertFalse(installed.isEmpty)
        XCTAssertTrue(installed.allSatisfy { !$0.hasSuffix("-dev") }, "\(installed)")

        // What `broker` links, for each package `make run` installs; nil: needed to build only.
        let runtimeOf: [String: String?] = [
            "libssl-dev": "libssl3", "libcurl4-openssl-dev": "libcurl4", "libargon2-dev": "libargon2-1",
            "pkg-config": nil, "openssl": nil,
        ]
        let runPackages = try MakefileDependenciesTests.run("scripts/install-deps.sh", ["--list", "run"])
            .split(separator: "\n").map(String.init)
        for package in runPackages {
            guard let counterpart = runtimeOf[package] else {
                XCTFail("install-deps.sh run installs \(package): add its runtime library to the Containerfile's runtime stage and to this table")
                continue
            }
            guard let library = counterpart else { continue }
            XCTAssertTrue(installed.contains(library), "the runtime stage lacks \(library), the library of \(package)")
            // The table against Debian itself: the -dev package depends on that library.
            let depends = try DeployRecipes.run("/usr/bin/dpkg-query", ["-W", "-f=${Depends}", package])
            if depends.status == 0 {
                XCTAssertNotNil(
                    depends.output.firstMatch(of: try Regex("(^|[ ,])\(library)( |,|$)")), "\(package) depends on \(depends.output)")
            }
        }
    }

    func testRuntimeStageRunsUnprivilegedWithItsStateInAVolumeAndChecksLivez() throws {
        let (_, stages) = try parse()
        let runtime = try XCTUnwrap(stages.last)
        let user = try XCTUnwrap(runtime.all("USER").last)
        let uid = try XCTUnwrap(Int(user.split(separator: ":")[0]), "a numeric user, which runAsNonRoot can check: \(user)")
        XCTAssertNotEqual(uid, 0)
        XCTAssertTrue(runtime.all("VOLUME").joined().contains("/var/lib/broker"), "\(runtime.all("VOLUME"))")

        let configuration = try XCTUnwrap(Yams.load(yaml: try DeployRecipes.text("container/broker.yaml")) as? [String: Any])
        let port = YAMLValue.int(configuration["port"]) ?? DeployRecipes.defaultPort
        XCTAssertEqual(YAMLValue.string(configuration["host"]), "0.0.0.0", "reachable from outside the container")
        XCTAssertEqual(runtime.all("EXPOSE"), ["\(port)"])
        let check = try XCTUnwrap(runtime.all("HEALTHCHECK").last)
        XCTAssertTrue(check.contains("http://127.0.0.1:\(port)/livez"), "liveness, never readiness: \(check)")
        XCTAssertEqual(runtime.all("ENTRYPOINT"), [#"["broker"]"#])
        XCTAssertTrue(try XCTUnwrap(runtime.all("CMD").last).hasPrefix(#"["serve""#))
        XCTAssertTrue(runtime.all("COPY").contains { $0.hasSuffix("deploy/container/broker.yaml /etc/broker/broker.yaml") })
        XCTAssertTrue(runtime.all("ENV").contains("BROKER_CONFIG=/etc/broker/broker.yaml"), "\(runtime.all("ENV"))")
        XCTAssertTrue(
            ["/var/lib/broker/data", "/var/lib/broker/keys"].allSatisfy { path in
                [configuration["data_dir"], configuration["keys_dir"]].contains { YAMLValue.string($0) == path }
            }, "the store and the keys in the volume")
    }

    func testImageConfigurationIsValid() throws {
        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        let result = try broker.run(["config", "check", "--config", DeployRecipes.url("container/broker.yaml").path])
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    func testBuildContextLeavesOutBuildsStoresKeysAndSecrets() throws {
        let ignored = Set(try String(contentsOf: OpenAPIContract.repositoryRoot.appendingPathComponent(".dockerignore"), encoding: .utf8)
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.hasPrefix("#") })
        for entry in [".build", "data", "keys", ".git", "deploy/compose/secrets"] { XCTAssertTrue(ignored.contains(entry), entry) }
    }
}
