import BrokerCore
import Hummingbird

/// Counts and times every request by route template, method and status
/// (`broker_http_requests_total`, `broker_http_request_duration_seconds`).
///
/// Hummingbird's own `MetricsMiddleware` names its metrics `hb.requests` and labels with the
/// raw method; this one keeps the broker's names and closes every label to a bounded set.
///
/// ```swift
/// router.add(middleware: HTTPMetricsMiddleware())
/// ```
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(request, context, status: response.status.code, since: start)
            return response
        } catch {
            record(request, context, status: (error as? any HTTPResponseError)?.status.code ?? 500, since: start)
            throw error
        }
    }

    private func record(_ request: Request, _ context: Context, status: Int, since start: ContinuousClock.Instant) {
        BrokerMetrics.httpRequest(
            route: context.routeLabel, method: request.method.metricLabel, status: status,
            duration: ContinuousClock.now - start)
    }
}

extension RequestContext {
    /// The matched route template (`/api/org_token/refresh/`), or `unmatched`: never the path
    /// the client sent, so that scanning random paths cannot create time series or log noise.
    var routeLabel: String {
        // Hummingbird's not-found responder records "NotFound" as the endpoint.
        guard let template = endpointPath, template != "NotFound" else { return BrokerMetrics.unmatchedRoute }
        return template
    }
}

extension HTTPRequest.Method {
    /// The method as a metric label: the standard methods by name, any other as `other`,
    /// because a client may send any token as a method.
    var metricLabel: String {
        switch self {
        case .get, .post, .put, .patch, .delete, .head, .options: rawValue
        default: "other"
        }
    }
}
