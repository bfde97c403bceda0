import BrokerCore
import Hummingbird
import Logging

/// Turns every error into the JSON error shape, so that no route answers with a stack trace,
/// an HTML page or an empty body. Unexpected errors are logged (never with request bodies)
/// and answered with a generic 500.
///
/// The router has one for every route; a route group that answers clients reading another shape
/// has one of its own inside it (``ErrorBodyShape``).
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    var shape: ErrorBodyShape = .standard

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as BrokerError {
            if error.code.isServerFailure {
                context.logger.error("request failed", metadata: ["error": "\(error)"])
            } else if error.code == .invalidFraming || error.code == .unsupportedTransferCoding {
                // The client's doing, and cheap for anyone to repeat: not worth more than debug.
                context.logger.debug("malformed request", metadata: ["error": "\(error)"])
            }
            return JSONResponses.error(error, for: request, shape: shape)
        } catch let error as StoreError where error.isUnavailable {
            context.logger.error("store unavailable", metadata: ["error": "\(error)"])
            return JSONResponses.error(BrokerError(storeUnavailable: error), for: request, shape: shape)
        } catch let error as any HTTPResponseError {
            return JSONResponses.error(
                Self.brokerError(for: error.status, path: "\(request.method) \(request.uri.path)"), for: request, shape: shape)
        } catch {
            if let framing = RequestBodyReading.framingError(error, headers: request.headers) {
                // A body read outside `RequestBodyReading` failed the same way.
                context.logger.debug("malformed request", metadata: ["error": "\(framing)"])
                return JSONResponses.error(framing, for: request, shape: shape)
            }
            context.logger.error("unexpected error", metadata: ["error": "\(String(describing: type(of: error)))"])
            return JSONResponses.error(BrokerError(.internalError, "internal error"), for: request, shape: shape)
        }
    }

    static func brokerError(for status: HTTPResponse.Status, path: String) -> BrokerError {
        switch status {
        case .notFound: BrokerError(.notFound, "no route for \(path)")
        case .methodNotAllowed: BrokerError(.methodNotAllowed, "method not allowed: \(path)")
        case .contentTooLarge: BrokerError(.payloadTooLarge, "the request body is too large")
        case .unsupportedMediaType: BrokerError(.unsupportedMediaType, "unsupported content type")
        case .badRequest: BrokerError(.invalidRequest, "bad request")
        default:
            status.code >= 500
                ? BrokerError(.internalError, "internal error") : BrokerError(.invalidRequest, "request refused (\(status.code))")
        }
    }
}

/// One log line per request: method, path (never the query or a header), status, duration, and
/// the matched route template (the request id comes with the logger's metadata).
struct AccessLogMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        context.logger.info(
            "\(request.method) \(request.uri.path) \(response.status.code)",
            metadata: [
                "ms": "\(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)",
                "route": "\(context.routeLabel)",
            ])
        return response
    }
}
