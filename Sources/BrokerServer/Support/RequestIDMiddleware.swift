import BrokerCore
import HTTPTypes
import Hummingbird
import Logging

/// Gives every request one id, carried by each of its log lines (`request_id`: in the request's
/// logger, and for the core services' loggers through ``RequestLogMetadata``) and returned in
/// the `X-Request-ID` response header, errors included, so that a client's report and a proxy's
/// log lead to the broker's lines. A well-formed incoming `X-Request-ID` (1–128 characters of
/// `A-Z a-z 0-9 . _ : -`) is kept, so that one id follows a request through a proxy chain;
/// anything else is replaced by Hummingbird's own id, so that a client cannot inject text into
/// the logs.
///
/// ```swift
/// router.add(middleware: RequestIDMiddleware())   // first: the outermost middleware
/// ```
struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    static var header: HTTPField.Name { HTTPField.Name("X-Request-ID")! }
    static var metadataKey: String { RequestLogMetadata.key }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let id = request.headers[Self.header].flatMap { Self.isAcceptable($0) ? $0 : nil } ?? context.id
        var context = context
        context.logger[metadataKey: Self.metadataKey] = .string(id)
        var response: Response
        do {
            response = try await RequestLogMetadata.$requestID.withValue(id) { try await next(request, context) }
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        response.headers[Self.header] = id
        return response
    }

    static func isAcceptable(_ candidate: String) -> Bool {
        let bytes = candidate.utf8
        guard (1...128).contains(bytes.count) else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"),
                UInt8(ascii: "-"):
                true
            default: false
            }
        }
    }
}
