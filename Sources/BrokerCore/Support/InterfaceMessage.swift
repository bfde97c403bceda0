/// A word of a message that each interface spells in its own language: the admin API names a
/// JSON field (`{"force": true}`, `access_lifetime`), the command line an option (`--force`,
/// `--access-lifetime`). The core names the input; it never writes either syntax.
public enum InterfaceTerm: Sendable, Equatable {
    /// An input of the operation, by its snake-case name (`access_lifetime`, `audiences`).
    case input(String)
    /// A boolean input that, set, overrides the refusal being explained (`force`).
    case override(String)
}

/// An error message whose inputs each interface spells its own way.
///
/// ```swift
/// let message: InterfaceMessage = "rotate now with \(.override("force"))"
/// message.spelled(HTTPSpelling.term)   // rotate now with {"force": true}
/// ```
public struct InterfaceMessage: Sendable, Equatable, CustomStringConvertible, ExpressibleByStringInterpolation {
    public enum Piece: Sendable, Equatable {
        case text(String)
        case term(InterfaceTerm)
    }

    public var pieces: [Piece]

    public init(stringLiteral value: String) {
        pieces = [.text(value)]
    }

    public init(stringInterpolation: StringInterpolation) {
        pieces = stringInterpolation.pieces
    }

    /// The message with each term spelled by `spell`.
    public func spelled(_ spell: (InterfaceTerm) -> String) -> String {
        pieces.map { piece in
            switch piece {
            case .text(let text): text
            case .term(let term): spell(term)
            }
        }.joined()
    }

    /// Spelled for no interface in particular (logs): the input's plain name.
    public var description: String {
        spelled { term in
            switch term {
            case .input(let name), .override(let name): name
            }
        }
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var pieces: [Piece] = []

        public init(literalCapacity: Int, interpolationCount: Int) {}

        public mutating func appendLiteral(_ literal: String) {
            if !literal.isEmpty { pieces.append(.text(literal)) }
        }

        public mutating func appendInterpolation(_ term: InterfaceTerm) {
            pieces.append(.term(term))
        }

        public mutating func appendInterpolation(_ value: some CustomStringConvertible) {
            pieces.append(.text(value.description))
        }
    }
}
