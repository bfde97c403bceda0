import BrokerCore
import Configuration
import Foundation
import SystemPackage
import Yams

/// Reads the broker's configuration in three layers, each overriding the one before: the YAML
/// file (`config/broker.yaml` by default), `BROKER_<KEY>` environment variables, command-line
/// flags. Every value is checked, and an error names the key and the layer it came from.
///
/// ```swift
/// let config = try await ConfigurationLoader(environment: ProcessInfo.processInfo.environment)
///     .load(file: options.config, flags: ["data_dir": "/tmp/d"])
/// ```
public struct ConfigurationLoader: Sendable {
    public static let defaultFile = "config/broker.yaml"

    public var environment: [String: String]

    public init(environment: [String: String]) {
        self.environment = environment
    }

    /// - Parameters:
    ///   - file: an explicit file (must exist); otherwise `BROKER_CONFIG`, otherwise the default
    ///     file if present.
    ///   - flags: values given as flags, by key name.
    public func load(file: String?, flags: [String: String]) async throws -> BrokerConfiguration {
        try EnvironmentNames.refuseUnknown(in: environment)
        var configuration = BrokerConfiguration()
        let explicit = file ?? environment[EnvironmentNames.configurationFile]
        let path = explicit ?? Self.defaultFile
        if explicit != nil || FileManager.default.fileExists(atPath: path) {
            try await apply(file: path, to: &configuration)
        }
        try applyGenericLogLevel(to: &configuration)
        for key in BrokerConfiguration.keys {
            let variable = EnvironmentNames.variable(for: key)
            guard let text = environment[variable] else { continue }
            try configuration.set(key, to: text, source: "environment \(variable)")
        }
        for key in BrokerConfiguration.structuredKeys {
            let variable = EnvironmentNames.variable(for: key)
            guard let json = environment[variable] else { continue }
            // Structured settings in the environment are JSON (YAML's subset).
            guard let value = try? JSONSerialization.jsonObject(with: Data(json.utf8)) else {
                throw ConfigurationError("environment \(variable) must be JSON")
            }
            try configuration.setGitHubOrganizations(value, source: "environment \(variable)")
        }
        for (key, value) in flags.sorted(by: { $0.key < $1.key }) {
            try configuration.set(key, to: value, source: "command line")
        }
        try configuration.validate()
        return configuration
    }

    /// The logging keys alone (`log_level`, `log_format`), for a command that reads no
    /// configuration file (`broker gateway`): `LOG_LEVEL`, then `BROKER_LOG_LEVEL` and
    /// `BROKER_LOG_FORMAT`, then `flags`, each checked as `load` checks it.
    public func loadLogging(flags: [String: String]) throws -> (level: String, format: String) {
        var configuration = BrokerConfiguration()
        try applyGenericLogLevel(to: &configuration)
        for key in ["log_level", "log_format"] {
            let variable = EnvironmentNames.variable(for: key)
            if let text = environment[variable] { try configuration.set(key, to: text, source: "environment \(variable)") }
        }
        for (key, value) in flags.sorted(by: { $0.key < $1.key }) {
            try configuration.set(key, to: value, source: "command line")
        }
        return (configuration.logLevel, configuration.logFormat)
    }

    /// `LOG_LEVEL`, the name container platforms set for every process, below `BROKER_LOG_LEVEL`.
    private func applyGenericLogLevel(to configuration: inout BrokerConfiguration) throws {
        guard let text = environment["LOG_LEVEL"] else { return }
        try configuration.set("log_level", to: text, source: "environment LOG_LEVEL")
    }

    private func apply(file path: String, to configuration: inout BrokerConfiguration) async throws {
        let file = try await Self.read(file: path)
        if let organizations = file.githubOrganizations {
            try configuration.setGitHubOrganizations(organizations, source: path)
        }
        for key in BrokerConfiguration.keys {
            guard let text = file.values[key] else { continue }
            try configuration.set(key, to: text, source: path)
        }
    }

    /// What a configuration file sets: each plain key as text, and `github_orgs` as parsed.
    struct FileLayer {
        var values: [String: String] = [:]
        var githubOrganizations: Any?
    }

    /// Reads and checks the shape of a configuration file (not yet the values).
    static func read(file path: String) async throws -> FileLayer {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigurationError("configuration file \(path) does not exist")
        }
        // A misspelt key silently falling back to its default is how auth services get
        // misconfigured: refuse keys we do not know.
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let document: Any?
        do {
            document = try Yams.load(yaml: text)
        } catch {
            throw ConfigurationError("\(path) is not valid YAML: \(error)")
        }
        var layer = FileLayer()
        if let document {
            guard let mapping = document as? [String: Any] else {
                throw ConfigurationError("\(path) must be a mapping of key: value")
            }
            for key in mapping.keys.sorted() {
                if BrokerConfiguration.structuredKeys.contains(key) {
                    layer.githubOrganizations = mapping[key] as Any
                    continue
                }
                guard BrokerConfiguration.keys.contains(key) else {
                    throw ConfigurationError(
                        "\(path): unknown key \(key) (known: \((BrokerConfiguration.keys + BrokerConfiguration.structuredKeys).joined(separator: ", ")))")
                }
                guard mapping[key] is String || mapping[key] is Int || mapping[key] is Double || mapping[key] is Bool
                    || mapping[key] is NSNull
                else {
                    throw ConfigurationError("\(path): \(key) must be a single value, not a list or a mapping")
                }
            }
        }
        let provider = try await FileProvider<YAMLSnapshot>(filePath: FilePath(path))
        let reader = ConfigReader(provider: provider)
        for key in BrokerConfiguration.keys {
            if let text = reader.string(forKey: ConfigKey(key)) { layer.values[key] = text }
        }
        return layer
    }
}

/// The `BROKER_*` environment variables the broker knows, all derived from the configuration's
/// keys, so that a new key is known in the environment the day it is added. Any other
/// `BROKER_*` name is refused rather than ignored: a typo (`BROKER_ACESS_LIFETIME`) would
/// otherwise fall back to the default without a word, and another program's variable that
/// happens to share the prefix could be taken for a setting.
public enum EnvironmentNames {
    public static let prefix = "BROKER_"
    /// Names another configuration file, like `--config`.
    public static let configurationFile = "BROKER_CONFIG"
    /// Read by the project's own test scripts, never by the broker; a developer's shell that
    /// exports them for `scripts/test.sh` must still be able to start a broker.
    public static let developmentTools: Set<String> = [
        "BROKER_TEST_PYTHON", "BROKER_BINARY", "BROKER_TEST_POSTGRES_URL", "BROKER_TEST_CHROMEDRIVER",
    ]

    /// The variable that sets `key`: `BROKER_` and the key in upper case.
    public static func variable(for key: String) -> String { prefix + key.uppercased() }

    /// Every variable that sets a key, and `BROKER_CONFIG`.
    public static var settings: [String] {
        (BrokerConfiguration.keys + BrokerConfiguration.structuredKeys).map(variable(for:)) + [configurationFile]
    }

    /// - Throws: ``ConfigurationError`` naming every unknown `BROKER_*` variable, with the known
    ///   name it most likely misspells.
    public static func refuseUnknown(in environment: [String: String]) throws {
        let known = Set(settings).union(developmentTools)
        let unknown = environment.keys.filter { $0.hasPrefix(prefix) && !known.contains($0) }.sorted()
        guard !unknown.isEmpty else { return }
        let named = unknown.map { name in
            guard let guess = closest(to: name, among: settings) else { return name }
            return "\(name) (did you mean \(guess)?)"
        }
        throw ConfigurationError(
            "environment: unknown variable\(unknown.count == 1 ? "" : "s") \(named.joined(separator: ", ")): "
                + "the broker reads BROKER_<KEY> for each key of config/broker.yaml and BROKER_CONFIG; "
                + "unset \(unknown.count == 1 ? "it" : "them"), or give another program's variables another prefix")
    }

    /// The known name within a few edits of `name`, if exactly one is nearest.
    static func closest(to name: String, among candidates: [String]) -> String? {
        let scored = candidates.map { (name: $0, distance: editDistance(name, $0)) }
        guard let best = scored.map({ $0.distance }).min(), best <= max(2, name.count / 5) else { return nil }
        let nearest = scored.filter { $0.distance == best }
        return nearest.count == 1 ? nearest[0].name : nil
    }

    /// Levenshtein distance: insertions, deletions and substitutions.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
