import ArgumentParser
import BrokerCore
import BrokerCrypto
import Foundation

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Inspect and rotate the signing key ring (works while the server runs).",
        subcommands: [List.self, Rotate.self, Retire.self, Slots.self, Rewrap.self])

    /// The admin API's key operations, run by the operator on the ring on disk: the same rules,
    /// file locking and audit lines (actor `cli`) as over HTTP.
    static func withKeyAdministration(
        _ options: GlobalOptions, _ configuration: BrokerConfiguration,
        _ body: (KeyAdministration) async throws -> KeyRingSnapshot
    ) async throws -> KeyRingSnapshot {
        LoggingBootstrap.run(configuration)
        return try await CommandEnvironment.withKeyRingStorage(options, configuration) { storage in
            guard let snapshot = try await storage.loadRing() else {
                throw KeyRingError("no key ring in \(storage.location) yet: start the broker once")
            }
            let audit = AuditTrail.file(path: configuration.auditLogPath, failureMode: configuration.auditFailureMode)
            let keys = KeyAdministration(
                storage: storage, ring: KeyRing(snapshot), algorithm: configuration.signingAlgorithm,
                policy: KeyLifecyclePolicy(configuration), audit: audit)
            do {
                let result = try await body(keys)
                await audit.close()
                return result
            } catch {
                await audit.close()
                throw error
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Promote the next key, retire the active one (still published until its tokens expire), generate a new next key.")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Promote the next key even if it was published less than key_prepublication ago.") var force = false

        func run() async throws {
            try await reportingErrors {
                let configuration = try await options.configuration()
                let ring = try await KeysCommand.withKeyAdministration(options, configuration) { keys in
                    try await keys.rotate(force: force, by: .operator)
                }
                print("rotated: \(ring.activeSigner(for: configuration.signingAlgorithm)?.kid ?? "-") now signs (ring version \(ring.version))")
            }
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Withdraw a key from the JWKS now (a compromised key): the broker refuses its tokens at once, offline gateways when they renew their keys (docs/gateways.md).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The kid of the key to withdraw. A kid may begin with '-': give it after `--` (broker keys retire --now -- KID).")
        var kid: String
        @Flag(help: "Required: withdraw now, without waiting for its tokens to expire.") var now = false

        func run() async throws {
            try await reportingErrors {
                guard now else {
                    throw ValidationError("retiring a key ahead of its schedule withdraws it at once; confirm with --now")
                }
                let configuration = try await options.configuration()
                let ring = try await KeysCommand.withKeyAdministration(options, configuration) { keys in
                    try await keys.retire(kid: kid, by: .operator)
                }
                print("withdrew \(kid); \(ring.activeSigner(for: configuration.signingAlgorithm)?.kid ?? "-") signs (ring version \(ring.version))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys: state, algorithm, kid, dates.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let configuration = try await options.configuration()
                LoggingBootstrap.run(configuration)
                let loaded = try await CommandEnvironment.withKeyRingStorage(options, configuration) { storage in
                    (try await storage.loadRing(), storage.location)
                }
                guard let ring = loaded.0 else {
                    print("no key ring in \(loaded.1) yet: `broker serve` creates one on first start")
                    return
                }
                print(Table.render(
                    ["STATE", "ALG", "KID", "CREATED", "ACTIVATED", "RETIRED", "RETIRES-AT"],
                    ring.keys.map(\.metadata).map {
                        [
                            $0.state.rawValue, $0.algorithm.rawValue, $0.kid, Table.date($0.createdAt),
                            Table.date($0.activatedAt), Table.date($0.retiredAt), Table.date($0.retiresAt),
                        ]
                    }))
            }
        }
    }
}

extension KeysCommand {
    /// Re-seals a key ring kept in the database under a new key-encryption key.
    struct Rewrap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-seal every private key and server secret of a key ring kept in the database under a new key-encryption key (then point key_encryption_key_file at the new file on every replica).")
        @OptionGroup var options: GlobalOptions
        @Option(name: .customLong("new-kek"), help: "A file holding the new key-encryption key: 32 random bytes in base64 (openssl rand -base64 32), mode 0600.")
        var newKEK: String

        func run() async throws {
            try await reportingErrors {
                let configuration = try await options.configuration()
                LoggingBootstrap.run(configuration)
                let newKey = try KeyEncryptionKey(file: newKEK, setting: "--new-kek")
                let version = try await CommandEnvironment.withKeyRingStorage(options, configuration) { storage in
                    try await KeyRingRewrap.rewrap(storage, to: newKey).ringVersion() ?? 0
                }
                print(
                    "re-sealed the key ring under KEK id \(newKey.identifier) (ring version \(version)); now set "
                        + "key_encryption_key_file to \(newKEK) on every replica and restart them")
            }
        }
    }

    /// How many keys a gateway that loads them one by one (HAProxy's key slots) must hold.
    struct Slots: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print how many keys of one algorithm the JWKS can publish at once with these settings (HAProxy's key slots).")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let configuration = try await options.configuration()
                print(Self.describe(KeyLifecyclePolicy(configuration), configuration))
            }
        }

        static func describe(_ policy: KeyLifecyclePolicy, _ configuration: BrokerConfiguration) -> String {
            guard let slots = policy.maximumPublishedKeys else {
                return "unbounded: key_prepublication is 0, so rotations are not limited and neither is the number of "
                    + "published keys; set key_prepublication (e.g. 600) to bound it"
            }
            return "\(slots) key slots: 1 active + 1 next + up to \(slots - 2) retired keys "
                + "(a retired key stays published at most \(policy.retention) s = longest token lifetime "
                + "\(KeyLifecyclePolicy.longestTokenLifetime(configuration)) s + clock_skew \(configuration.clockSkew) s "
                + "+ key_reload_interval \(configuration.keyReloadInterval) s, and is unpublished within "
                + "\(policy.reloadInterval) s after; rotations without --force are at least key_prepublication "
                + "\(policy.prepublication) s apart; a key that signed only shorter tokens, or nothing, leaves earlier)"
        }
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Work with access tokens.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a token against the local key ring; print its claims, or why it is invalid (exit 1).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The token (a compact JWS).") var token: String
        @Option(help: "Require this value in aud.") var audience: String?
        @Option(help: "Require this iss (default: the configured issuer).") var issuer: String?

        func run() async throws {
            try await reportingErrors {
                let configuration = try await options.configuration()
                LoggingBootstrap.run(configuration)
                let loaded = try await CommandEnvironment.withKeyRingStorage(options, configuration) { storage in
                    (try await storage.loadRing(), storage.location)
                }
                guard let snapshot = loaded.0 else {
                    throw BrokerError(.notFound, "no key ring in \(loaded.1)")
                }
                let verifier = TokenVerifier(
                    keyRing: KeyRing(snapshot), issuer: issuer ?? configuration.issuer,
                    leeway: configuration.clockSkew, clock: SystemWallClock())
                do {
                    _ = try verifier.verify(token, audience: audience)
                } catch let rejection as TokenRejection {
                    FileHandle.standardError.write(Data("invalid: \(rejection.description)\n".utf8))
                    throw ExitCode.failure
                }
                // Verified above; print the payload as it was signed.
                let payload = try CompactJWS.parse(token).payload
                let object = try JSONSerialization.jsonObject(with: Data(payload))
                let pretty = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                print("valid")
                print(String(decoding: pretty, as: UTF8.self))
            }
        }
    }
}
