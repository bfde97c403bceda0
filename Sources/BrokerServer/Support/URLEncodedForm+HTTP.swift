import Hummingbird

extension URLEncodedForm {
    /// - Throws: ``Malformed``; the body reading's own ``BrokerError``s (413, framing).
    package static func read(_ request: inout Request) async throws -> URLEncodedForm {
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        guard contentType.hasPrefix("application/x-www-form-urlencoded") else {
            throw Malformed(reason: "the body must be application/x-www-form-urlencoded")
        }
        let buffer = try await RequestBodyReading.collect(&request, upTo: JSONRequestBody.maximumSize)
        guard let text = String(validating: buffer.readableBytesView, as: UTF8.self) else {
            throw Malformed(reason: "the body is not UTF-8")
        }
        return try parse(text)
    }
}
