/// A parsed JSON document, as produced by `JSONParser`.
///
/// Integers that fit in 64 bits are kept exact as `.integer`; every other number is `.number`.
/// JOSE claims such as `exp` and `iat` are integers, and reading them through `Double` would
/// silently round values above 2^53.
///
/// Not declared `indirect`: arrays and dictionaries already store their elements out of line,
/// and an indirect enum would put every scalar in its own heap box, which made parsing a
/// token's claims several times slower.
///
/// ```swift
/// let claims = try JSONParser.parse(jws.payload)
/// let expiry = claims["exp"]?.int64
/// let audience = claims["aud"]?.array?.compactMap(\.string)
/// ```
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case integer(Int64)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The text of a `.string`, else nil.
    public var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The value of an `.integer`, else nil (a `.number` is never truncated into an integer).
    public var int64: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The value of a `.number` or an `.integer`, else nil.
    public var double: Double? {
        switch self {
        case .number(let value): return value
        case .integer(let value): return Double(value)
        default: return nil
        }
    }

    /// The value of a `.bool`, else nil.
    public var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The elements of an `.array`, else nil.
    public var array: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The members of an `.object`, else nil.
    public var object: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// The member `name` of an `.object`; nil if absent or if this is not an object.
    public subscript(name: String) -> JSONValue? {
        if case .object(let members) = self { return members[name] }
        return nil
    }
}
