import ArgumentParser
import BrokerCore
import BrokerCrypto
import Foundation

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Inspect and rotate the signing key ring (works while the server runs).",
        subcommands: [List.self, Rotate.self, Retire.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Promote the next key, retire the active one (still published until its tokens expire), generate a new next key.")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Promote the next key even if it was published less than key_prepublication ago.") var force = false

        func run() async throws {
            try await reportingErrors {
                let configuration = try await options.configuration()
                LoggingBootstrap.run(configuration)
                let audit = AuditTrail.file(path: configuration.auditLogPath, failureMode: configuration.auditFailureMode)
                let ring: KeyRingSnapshot
                do {
                    ring = try KeyDirectory(path: configuration.keysDirectory).rotate(
                        algorithm: configuration.signingAlgorithm, policy: KeyLifecyclePolicy(configuration), force: force)
                } catch {
                    try await audit.record(.keyRotate, .failure, actor: "cli", reason: "\(error)")
                    await audit.close()
                    throw error
                }
                try await audit.record(
                    .keyRotate, .success, actor: "cli", target: ring.activeSigner(for: configuration.signingAlgorithm)?.kid,
                    reason: force ? "forced" : nil)
                await audit.close()
                print("rotated: \(ring.activeSigner(for: configuration.signingAlgorithm)?.kid ?? "-") now signs (ring version \(ring.version))")
            }
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Withdraw a key immediately (a compromised key): its tokens stop validating.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The kid of the key to withdraw.") var kid: String
        @Flag(help: "Required: withdraw now, without waiting for its tokens to expire.") var now = false

        func run() async throws {
            try await reportingErrors {
                guard now else {
                    throw ValidationError("retiring a key ahead of its schedule withdraws it at once; confirm with --now")
                }
                let configuration = try await options.configuration()
                LoggingBootstrap.run(configuration)
                let audit = AuditTrail.file(path: configuration.auditLogPath, failureMode: configuration.auditFailureMode)
                let ring: KeyRingSnapshot
                do {
                    ring = try KeyDirectory(path: configuration.keysDirectory).retireNow(
                        kid: kid, policy: KeyLifecyclePolicy(configuration))
                } catch {
                    try await audit.record(.keyRetire, .failure, actor: "cli", target: kid, reason: "\(error)")
                    await audit.close()
                    throw error
                }
                try await audit.record(.keyRetire, .success, actor: "cli", target: kid)
                await audit.close()
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
                guard let ring = try KeyDirectory(path: configuration.keysDirectory).load() else {
                    print("no key ring in \(configuration.keysDirectory) yet: `broker serve` creates one on first start")
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
                guard let snapshot = try KeyDirectory(path: configuration.keysDirectory).load() else {
                    throw BrokerError(.notFound, "no key ring in \(configuration.keysDirectory)")
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
