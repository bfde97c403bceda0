import BrokerCore
import BrokerCrypto

/// A request's JSON object body, read with the strict parser of BrokerCrypto: at most
/// ``maximumSize`` bytes, UTF-8, one object. Unknown members are ignored (clients send extras);
/// the members a route needs must be strings.
///
/// Reading it from a request is in JSONRequestBody+HTTP.swift: this file depends on nothing
/// HTTP, so that the fuzz target FuzzRequestBody compiles it as it is (docs/fuzzing.md).
struct JSONRequestBody {
    static let maximumSize = 64 * 1024

    let members: [String: JSONValue]

    init(members: [String: JSONValue]) {
        self.members = members
    }

    /// Parses a body already read: one JSON object, strictly (see `JSONParser`).
    init(bytes: some Collection<UInt8>) throws {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw BrokerError(.invalidRequest, "the request body is not valid JSON (UTF-8, one JSON object)")
        }
        guard case .object(let members) = value else {
            throw BrokerError(.invalidRequest, "the request body must be a JSON object")
        }
        self.members = members
    }

    /// An optional string member (absent or null → nil), validated like ``string(_:)``.
    func optionalString(_ name: String) throws -> String? {
        switch members[name] {
        case nil, .null?: return nil
        default: return try string(name)
        }
    }

    func optionalBool(_ name: String) throws -> Bool? {
        switch members[name] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        default: throw BrokerError(.invalidRequest, "\(name) must be true or false")
        }
    }

    /// An optional integer member within `range`.
    func optionalInteger(_ name: String, in range: ClosedRange<Int64>) throws -> Int64? {
        switch members[name] {
        case nil, .null?: return nil
        case .integer(let value)? where range.contains(value): return value
        default: throw BrokerError(.invalidRequest, "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
    }

    /// An optional array of strings (absent or null → nil).
    func optionalStrings(_ name: String) throws -> [String]? {
        switch members[name] {
        case nil, .null?: return nil
        case .array(let values)?:
            return try values.map { value in
                guard case .string(let text) = value else {
                    throw BrokerError(.invalidRequest, "\(name) must be an array of strings")
                }
                return text
            }
        default: throw BrokerError(.invalidRequest, "\(name) must be an array of strings")
        }
    }

    /// A required password member, by the login rule of ``PasswordPolicy`` (which every
    /// password setter applies too).
    func password(_ name: String = "password") throws -> String {
        guard case .string(let text)? = members[name] else { return try string(name) }
        try PasswordPolicy.validatePresented(text, field: name)
        return text
    }

    /// A required, non-empty string member without control characters.
    func string(_ name: String) throws -> String {
        guard let value = members[name] else {
            throw BrokerError(.invalidRequest, "\(name) is required")
        }
        guard case .string(let text) = value else {
            throw BrokerError(.invalidRequest, "\(name) must be a string")
        }
        guard !text.isEmpty else {
            throw BrokerError(.invalidRequest, "\(name) must not be empty")
        }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw BrokerError(.invalidRequest, "\(name) must not contain control characters")
        }
        return text
    }
}
