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
        var configuration = BrokerConfiguration()
        let explicit = file ?? environment["BROKER_CONFIG"]
        let path = explicit ?? Self.defaultFile
        if explicit != nil || FileManager.default.fileExists(atPath: path) {
            try await apply(file: path, to: &configuration)
        }
        try applyGenericLogLevel(to: &configuration)
        let variables = EnvironmentVariablesProvider(environmentVariables: environment).prefixKeys(with: "broker")
        try apply(ConfigReader(provider: variables), source: "environment", prefix: "BROKER_", to: &configuration)
        if let json = environment["BROKER_GITHUB_ORGS"] {
            // Structured settings in the environment are JSON (YAML's subset).
            guard let value = try? JSONSerialization.jsonObject(with: Data(json.utf8)) else {
                throw ConfigurationError("environment BROKER_GITHUB_ORGS must be JSON")
            }
            try configuration.setGitHubOrganizations(value, source: "environment BROKER_GITHUB_ORGS")
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
            let variable = "BROKER_\(key.uppercased())"
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
        if let document {
            guard let mapping = document as? [String: Any] else {
                throw ConfigurationError("\(path) must be a mapping of key: value")
            }
            for key in mapping.keys.sorted() {
                if BrokerConfiguration.structuredKeys.contains(key) {
                    try configuration.setGitHubOrganizations(mapping[key] as Any, source: path)
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
        try apply(ConfigReader(provider: provider), source: path, prefix: "", to: &configuration)
    }

    private func apply(
        _ reader: ConfigReader, source: String, prefix: String, to configuration: inout BrokerConfiguration
    ) throws {
        for key in BrokerConfiguration.keys {
            guard let text = reader.string(forKey: ConfigKey(key)) else { continue }
            try configuration.set(key, to: text, source: prefix.isEmpty ? source : "\(source) \(prefix)\(key.uppercased())")
        }
    }
}
