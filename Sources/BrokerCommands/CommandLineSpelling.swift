import BrokerCore
import Foundation

/// How the command line names the inputs of a message (``InterfaceTerm``): as its options.
enum CommandLineSpelling {
    /// Inputs whose option is not the input's name in kebab case.
    static let options = ["audiences": "--audience"]

    static func term(_ term: InterfaceTerm) -> String {
        switch term {
        case .input(let name), .override(let name):
            options[name] ?? "--" + name.replacingOccurrences(of: "_", with: "-")
        }
    }
}
