import ArgumentParser
import BrokerCore
import Foundation

/// `broker config`: the configuration as the broker reads it.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Inspect the configuration.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every effective setting with its source; exit 1 naming any invalid one.",
            discussion: """
                Reads the configuration as broker serve would (the file, BROKER_* variables, \
                flags), without opening the database. Each line is `key = value  (source)`, the \
                source being default, file PATH, environment VARIABLE or flag --NAME. Secrets \
                (passwords, secrets, tokens, and the password in a URL) are shown as ********. \
                Every invalid setting is named on standard error, and the exit status is then 1.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "Check with this listening address, as broker serve --host would (host).") var host: String?
        @Option(help: "Check with this port, as broker serve --port would (port).") var port: String?

        func run() async throws {
            var flags: [String: String] = [:]
            if let dataDir = options.dataDir { flags["data_dir"] = dataDir }
            if let keysDir = options.keysDir { flags["keys_dir"] = keysDir }
            if let host { flags["host"] = host }
            if let port { flags["port"] = port }
            let check = await ConfigurationLoader(environment: ProcessInfo.processInfo.environment)
                .check(file: options.config, flags: flags)
            let width = check.settings.map(\.key.count).max() ?? 0
            for setting in check.settings {
                let key = setting.key.padding(toLength: width, withPad: " ", startingAt: 0)
                print("\(key) = \(setting.shownValue)  (\(setting.source))")
            }
            guard check.problems.isEmpty else {
                for problem in check.problems {
                    FileHandle.standardError.write(Data("error: \(problem)\n".utf8))
                }
                throw ExitCode.failure
            }
        }
    }
}
