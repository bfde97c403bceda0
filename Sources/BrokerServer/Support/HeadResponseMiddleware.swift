import HTTPTypes
import Hummingbird

/// Answers `HEAD` as `GET` without the body (RFC 9110 section 9.3.2): same status, same
/// headers, `Content-Length` and `ETag` included. The router's `autoGenerateHeadEndpoints`
/// routes a `HEAD` to the `GET` handler; this middleware, outermost, drops the body of every
/// answer to a `HEAD`, including the error answers (404, 405, 401) that the router and the
/// other middleware produce, which would otherwise be written after a head the client reads
/// as complete and corrupt the next answer on the connection.
///
/// ```swift
/// let router = Router(context: BrokerRequestContext.self, options: .autoGenerateHeadEndpoints)
/// router.add(middleware: HeadResponseMiddleware())
/// ```
struct HeadResponseMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let response = try await next(request, context)
        guard request.method == .head else { return response }
        // `createHeadResponse` keeps the headers, so the GET answer's Content-Length stays.
        return response.createHeadResponse()
    }
}
