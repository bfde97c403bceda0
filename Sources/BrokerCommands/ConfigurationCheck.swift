import BrokerCore
import BrokerCrypto
import Foundation

/// Every effective setting with the layer it came from, and every problem, for
/// `broker config check`. Unlike ``ConfigurationLoader/load(file:flags:)``, which stops at the
/// first problem, a check carries on past an invalid value (the key keeps the value of the layer
/// below) so that one run names every invalid setting.
///
/// ```swift
/// let check = await ConfigurationLoader(environment: env).check(file: nil, flags: ["port": "0"])
/// for setting in check.settings { print(setting.key, setting.shownValue, setting.source) }
/// ```
struct ConfigurationCheck {
    /// Where an effective value came from.
    enum Source: Equatable, CustomStringConvertible {
        case defaultValue
        case file(String)
        case environment(String)
        case flag(String)

        var description: String {
            switch self {
            case .defaultValue: "default"
            case .file(let path): "file \(path)"
            case .environment(let variable): "environment \(variable)"
            case .flag(let flag): "flag \(flag)"
            }
        }
    }

    struct Setting {
        var key: String
        /// The effective value as shown: a secret's is masked.
        var shownValue: String
        var source: Source
    }

    var settings: [Setting] = []
    /// One line each, naming the key (and the layer) that is invalid; never a secret's value.
    var problems: [String] = []
}

extension ConfigurationLoader {
    /// The effective configuration of `file` (as in `load`), the environment and `flags`, with
    /// the source of each value and every problem found.
    func check(file: String?, flags: [String: String]) async -> ConfigurationCheck {
        var check = ConfigurationCheck()
        var configuration = BrokerConfiguration()
        var sources: [String: ConfigurationCheck.Source] = [:]

        func apply(_ key: String, _ text: String, _ source: ConfigurationCheck.Source, named name: String) {
            do {
                try configuration.set(key, to: text, source: name)
                sources[key] = source
            } catch {
                check.problems.append(ConfigurationSecrets.isSecret(key) ? "\(name): \(key) is invalid (value not shown)" : "\(error)")
            }
        }

        do {
            try EnvironmentNames.refuseUnknown(in: environment)
        } catch {
            check.problems.append("\(error)")
        }
        let explicit = file ?? environment[EnvironmentNames.configurationFile]
        let path = explicit ?? Self.defaultFile
        if explicit != nil || FileManager.default.fileExists(atPath: path) {
            do {
                let layer = try await Self.read(file: path)
                if let organizations = layer.githubOrganizations {
                    do {
                        try configuration.setGitHubOrganizations(organizations, source: path)
                        sources["github_orgs"] = .file(path)
                    } catch {
                        check.problems.append("\(error)")
                    }
                }
                for key in BrokerConfiguration.keys {
                    if let text = layer.values[key] { apply(key, text, .file(path), named: path) }
                }
            } catch {
                check.problems.append("\(error)")
            }
        }
        if let text = environment["LOG_LEVEL"] {
            apply("log_level", text, .environment("LOG_LEVEL"), named: "environment LOG_LEVEL")
        }
        for key in BrokerConfiguration.keys {
            let variable = EnvironmentNames.variable(for: key)
            if let text = environment[variable] { apply(key, text, .environment(variable), named: "environment \(variable)") }
        }
        for key in BrokerConfiguration.structuredKeys {
            let variable = EnvironmentNames.variable(for: key)
            guard let json = environment[variable] else { continue }
            do {
                guard let value = try? JSONSerialization.jsonObject(with: Data(json.utf8)) else {
                    throw ConfigurationError("environment \(variable) must be JSON")
                }
                try configuration.setGitHubOrganizations(value, source: "environment \(variable)")
                sources[key] = .environment(variable)
            } catch {
                check.problems.append("\(error)")
            }
        }
        for (key, value) in flags.sorted(by: { $0.key < $1.key }) {
            let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
            apply(key, value, .flag(flag), named: "command line")
        }
        var validated = configuration
        do {
            try validated.validate()
        } catch {
            check.problems.append("\(error)")
        }
        if !configuration.keyEncryptionKeyFile.isEmpty {
            do {
                _ = try KeyEncryptionKey(file: configuration.keyEncryptionKeyFile)
            } catch {
                check.problems.append("\(error)")
            }
        }
        if !configuration.githubClientSecretFile.isEmpty {
            // Read as `broker serve` reads it at start; the problem names the file, never the secret.
            do {
                _ = try configuration.githubClientSecretValue()
            } catch {
                check.problems.append("\(error)")
            }
        }

        for key in BrokerConfiguration.keys + BrokerConfiguration.structuredKeys {
            let value = configuration.shownValue(of: key)
            check.settings.append(
                .init(
                    key: key, shownValue: ConfigurationSecrets.mask(value, of: key), source: sources[key] ?? .defaultValue))
        }
        return check
    }
}

/// Which settings are secret, and how a secret is shown: never its value. Decided by the key's
/// name, so that a secret key added later (a client secret, a database password) is masked the
/// day it is added; a `_file` key names a file, which is not secret (its contents are). A URL with a password in
/// it (a proxy, a database URL) shows everything but the password.
enum ConfigurationSecrets {
    /// How a secret key's name ends (`password_hash_concurrency` is not one).
    static let secretEndings = ["password", "secret", "token", "private_key", "encryption_key", "credentials"]
    static let mask = "********"

    static func isSecret(_ key: String) -> Bool {
        secretEndings.contains { key.hasSuffix($0) }
    }

    /// The value as `broker config check` shows it; `""` when empty, so that an empty value is seen.
    static func mask(_ value: String, of key: String) -> String {
        if value.isEmpty { return "\"\"" }
        return isSecret(key) ? mask : maskingURLPassword(value)
    }

    /// `scheme://user:password@host…` → `scheme://user:********@host…`.
    static func maskingURLPassword(_ value: String) -> String {
        guard let scheme = value.range(of: "://") else { return value }
        let rest = value[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return value }
        return String(value[..<authority.index(after: colon)]) + mask + String(value[at...])
    }
}

extension BrokerConfiguration {
    /// The value of `key` as a person reads it (and as the file would spell it).
    func shownValue(of key: String) -> String {
        switch key {
        case "issuer": issuer
        case "host": host
        case "port": "\(port)"
        case "data_dir": dataDirectory
        case "keys_dir": keysDirectory
        case "database_url": (try? DatabaseURL(parsing: databaseURL)).map { "\($0)" } ?? DatabaseURL.masking(databaseURL)
        case "database_password_file": databasePasswordFile
        case "database_pool_size": "\(databasePoolSize)"
        case "database_connect_timeout": "\(databaseConnectTimeout)"
        case "database_statement_timeout": "\(databaseStatementTimeout)"
        case "signing_alg": signingAlgorithm.rawValue
        case "access_lifetime": "\(accessLifetime)"
        case "refresh_lifetime": "\(refreshLifetime)"
        case "session_max_lifetime": "\(sessionMaxLifetime)"
        case "refresh_reuse_grace": "\(refreshReuseGrace)"
        case "clock_skew": "\(clockSkew)"
        case "argon2_memory_kib": "\(argon2.memoryKiB)"
        case "argon2_iterations": "\(argon2.iterations)"
        case "argon2_parallelism": "\(argon2.parallelism)"
        case "password_hash_concurrency": "\(passwordHashConcurrency)"
        case "log_level": logLevel
        case "log_format": logFormat
        case "jwks_max_age": "\(jwksMaxAge)"
        case "key_prepublication": "\(keyPrepublication)"
        case "key_rotation_period": "\(keyRotationPeriod)"
        case "key_reload_interval": "\(keyReloadInterval)"
        case "key_encryption_key_file": keyEncryptionKeyFile
        case "github_api_url": githubAPIURL
        case "github_web_url": githubWebURL
        case "github_client_id": githubClientID
        case "github_client_secret": githubClientSecret
        case "github_client_secret_file": githubClientSecretFile
        case "github_proxy": githubProxy
        case "github_connect_timeout": "\(githubConnectTimeout)"
        case "github_timeout": "\(githubTimeout)"
        case "github_identity_ttl": "\(githubIdentityTTL)"
        case "github_rejection_ttl": "\(githubRejectionTTL)"
        case "generation2_access_lifetime": "\(generation2AccessLifetime)"
        case "home_org": homeOrganization
        case "sliderule_client_id": slideRuleClientID.rawValue
        case "provisioner_url": provisionerURL.isEmpty ? "(unset: scaling calls are answered 501)" : provisionerURL
        case "provisioner_timeout": "\(provisionerTimeout)"
        case "admin_session_lifetime": "\(adminSessionLifetime)"
        case "portal": portalEnabled ? "on" : "off"
        case "portal_session_lifetime": "\(portalSessionLifetime)"
        case "portal_idle_timeout": "\(portalIdleTimeout)"
        case "portal_insecure_cookies": "\(portalInsecureCookies)"
        case "portal_signup": portalSignup.rawValue
        case "portal_signup_throttle_ip": "\(portalSignupThrottleIP)"
        case "bootstrap_admin": bootstrapAdmin
        case "bootstrap_admin_password": bootstrapAdminPassword
        case "bootstrap_admin_password_file": bootstrapAdminPasswordFile
        case "audit_log": auditLog.isEmpty ? "\(auditLogPath) (empty: in data_dir)" : auditLog
        case "audit_failure_mode": auditFailureMode.rawValue
        case "login_throttle_window": "\(loginThrottleWindow)"
        case "login_throttle_user_ip": "\(loginThrottleUserIP)"
        case "login_throttle_user": "\(loginThrottleUser)"
        case "login_throttle_ip": "\(loginThrottleIP)"
        case "login_throttle_tracked_keys": "\(loginThrottleTrackedKeys)"
        case "github_login_throttle_window": "\(githubLoginThrottleWindow)"
        case "login_failure_floor_ms": "\(loginFailureFloorMilliseconds)"
        case "github_login_throttle_ip": "\(githubLoginThrottleIP)"
        case "refresh_throttle_window": "\(refreshThrottleWindow)"
        case "refresh_throttle_session": "\(refreshThrottleSession)"
        case "prune_interval": "\(pruneInterval)"
        case "prune_batch_size": "\(pruneBatchSize)"
        case "trusted_proxies": trustedProxies.joined(separator: ",")
        case "shutdown_grace": "\(shutdownGrace)"
        case "metrics_host": metricsHost ?? "(unset: \(metricsListenHost) when metrics_port is set)"
        case "metrics_port": metricsPort.map { "\($0)" } ?? "(unset: /metrics on the public listener)"
        case "http_header_timeout": "\(httpHeaderTimeout)"
        case "http_body_timeout": "\(httpBodyTimeout)"
        case "http_idle_timeout": "\(httpIdleTimeout)"
        case "max_connections": maxConnections.map { "\($0)" } ?? "(unset: from ulimit -n)"
        case "max_connections_per_address": maxConnectionsPerAddress.map { "\($0)" } ?? "(unset: a quarter of max_connections)"
        case "github_orgs":
            githubOrganizations.map { mapping in
                "\(mapping.organization) → github \(mapping.githubOrganization)"
                    + " (admit_members: \(mapping.admitMembers), teams: \(mapping.teams.count))"
            }.joined(separator: "; ")
        default: "(not shown)"
        }
    }
}
