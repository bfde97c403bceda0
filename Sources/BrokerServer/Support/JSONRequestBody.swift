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
