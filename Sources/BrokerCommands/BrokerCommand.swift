import ArgumentParser
import BrokerCore

/// `broker`: the one executable — the server and every administration command.
public struct BrokerCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "An authentication and credential broker for private compute clusters.",
        version: "broker \(BrokerVersion.current)",
        subcommands: [
            ServeCommand.self, UsersCommand.self, OrgsCommand.self, MembersCommand.self, InvitesCommand.self, KeysCommand.self,
            TokenCommand.self, GatewayCommand.self, AuditCommand.self, MaintenanceCommand.self,
            DatabaseCommand.self, ConfigCommand.self,
        ])

    public init() {}
}

extension BrokerCommand {
    /// The entry point of the `broker` executable.
    public static func runFromCommandLine() async {
        await main()
    }
}
