import BrokerCore

/// How the HTTP API names the inputs of a message (``InterfaceTerm``): as the fields of its JSON
/// bodies.
enum HTTPSpelling {
    static func term(_ term: InterfaceTerm) -> String {
        switch term {
        case .input(let field): field
        case .override(let field): #"{"\#(field)": true}"#
        }
    }
}

extension BrokerError {
    /// The `detail` of an HTTP answer.
    var httpDetail: String { detail(spelling: HTTPSpelling.term) }
}
