import Foundation
import BrokerCore
import BrokerCrypto
import Hummingbird

extension JSONRequestBody {
    /// A body that must be there, declared `application/json` (see ``JSONMediaType``).
    static func read(_ request: inout Request) async throws -> JSONRequestBody {
        try JSONMediaType.require(request.headers)
        let buffer = try await RequestBodyReading.collect(&request, upTo: maximumSize)
        return try JSONRequestBody(bytes: buffer.readableBytesView)
    }

    /// A body that may be absent: an empty body reads as `{}` whatever its content type (there
    /// is nothing to misread); any other body must be declared `application/json`.
    static func readOptional(_ request: inout Request) async throws -> JSONRequestBody {
        if let length = request.headers[.contentLength], length == "0" { return JSONRequestBody(members: [:]) }
        let buffer = try await RequestBodyReading.collect(&request, upTo: maximumSize)
        if buffer.readableBytesView.allSatisfy({ [0x20, 0x09, 0x0A, 0x0D].contains($0) }) {
            return JSONRequestBody(members: [:])
        }
        try JSONMediaType.require(request.headers)
        return try JSONRequestBody(bytes: buffer.readableBytesView)
    }
}

/// The one content type a JSON body may be declared with: `application/json`, the media type
/// case-insensitive, with optional parameters of which `charset`, if present, must be `utf-8`
/// (the body is parsed as UTF-8 whatever it says). Refused with 415 `unsupported_media_type`:
/// no `Content-Type`, `text/plain`, forms, `multipart/form-data` (the types a page on another
/// site may post without a CORS preflight) and everything else, `application/*+json` included,
/// because no client of the broker sends it.
enum JSONMediaType {
    static func require(_ headers: HTTPFields) throws {
        let declared = headers[values: .contentType]
        guard declared.count == 1, accepts(declared[0]) else {
            throw BrokerError(.unsupportedMediaType, "the request body must be sent as Content-Type: application/json")
        }
    }

    static func accepts(_ contentType: String) -> Bool {
        let parts = contentType.split(separator: ";", omittingEmptySubsequences: false)
        guard parts[0].trimmingCharacters(in: .whitespaces).lowercased() == "application/json" else { return false }
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = pair[0].trimmingCharacters(in: .whitespaces).lowercased()
            guard name == "charset" else { continue }
            guard pair.count == 2 else { return false }
            let value = pair[1].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            guard value.lowercased() == "utf-8" else { return false }
        }
        return true
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
