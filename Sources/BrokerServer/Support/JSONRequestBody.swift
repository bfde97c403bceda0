import Foundation
import BrokerCore
import BrokerCrypto
import Hummingbird

/// A request's JSON object body, read with the strict parser of BrokerCrypto: at most
/// ``maximumSize`` bytes, UTF-8, one object. Unknown members are ignored (clients send extras);
/// the members a route needs must be strings.
struct JSONRequestBody {
    static let maximumSize = 64 * 1024

    let members: [String: JSONValue]

    static func read(_ request: inout Request) async throws -> JSONRequestBody {
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maximumSize)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw BrokerError(.payloadTooLarge, "the request body exceeds \(maximumSize) bytes")
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(Array(buffer.readableBytesView))
        } catch {
            throw BrokerError(.invalidRequest, "the request body is not valid JSON (UTF-8, one JSON object)")
        }
        guard case .object(let members) = value else {
            throw BrokerError(.invalidRequest, "the request body must be a JSON object")
        }
        return JSONRequestBody(members: members)
    }

    /// A body that may be absent: an empty body reads as `{}`.
    static func readOptional(_ request: inout Request) async throws -> JSONRequestBody {
        if let length = request.headers[.contentLength], length == "0" { return JSONRequestBody(members: [:]) }
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maximumSize)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw BrokerError(.payloadTooLarge, "the request body exceeds \(maximumSize) bytes")
        }
        if buffer.readableBytesView.allSatisfy({ [0x20, 0x09, 0x0A, 0x0D].contains($0) }) {
            return JSONRequestBody(members: [:])
        }
        request.body = .init(buffer: buffer)
        return try await read(&request)
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

extension Request {
    /// The token of an `Authorization: Bearer` header.
    func bearerToken() throws -> String {
        guard let header = headers[.authorization] else {
            throw BrokerError(.missingToken, "Authentication credentials were not provided")
        }
        guard let token = BearerCredentials.token(fromAuthorization: header) else {
            throw BrokerError(.invalidToken, "the Authorization header must be: Bearer <token>")
        }
        return token
    }
}
