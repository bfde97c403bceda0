import ArgumentParser
import BrokerCore
import BrokerCrypto
import Foundation

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Inspect the signing key ring.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys: state, algorithm, kid, dates.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let configuration = try await options.configuration()
                LoggingBootstrap.run(level: configuration.logLevel)
                guard let ring = try KeyDirectory(path: configuration.keysDirectory).load() else {
                    print("no key ring in \(configuration.keysDirectory) yet: `broker serve` creates one on first start")
                    return
                }
                print(Table.render(
                    ["STATE", "ALG", "KID", "CREATED", "ACTIVATED", "RETIRED"],
                    ring.keys.map(\.metadata).map {
                        [
                            $0.state.rawValue, $0.algorithm.rawValue, $0.kid, Table.date($0.createdAt),
                            Table.date($0.activatedAt), Table.date($0.retiredAt),
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
                LoggingBootstrap.run(level: configuration.logLevel)
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
