import Foundation
import BrokerCore
import BrokerCrypto
import Hummingbird

extension JSONRequestBody {
    static func read(_ request: inout Request) async throws -> JSONRequestBody {
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maximumSize)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw BrokerError(.payloadTooLarge, "the request body exceeds \(maximumSize) bytes")
        }
        return try JSONRequestBody(bytes: buffer.readableBytesView)
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
