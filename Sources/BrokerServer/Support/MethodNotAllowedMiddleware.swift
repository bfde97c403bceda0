import BrokerCore
import HTTPTypes
import Hummingbird

/// Answers 405 `method_not_allowed` with `Allow` (RFC 9110 section 15.5.6) where Hummingbird's
/// router answers 404: the path names a route, but not with this method. The error catalogue
/// promises it, and a client that sent the wrong method learns what to send instead.
///
/// Added after every route, so it wraps only the router's not-found responder (the router
/// builds each endpoint's middleware chain when the endpoint is added):
///
/// ```swift
/// router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))
/// ```
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// One routed path: its segments (`nil` for a parameter) and the methods it answers.
    struct RoutedPath {
        var segments: [Substring?]
        var methods: [HTTPRequest.Method]
    }

    let paths: [RoutedPath]

    init(routes: [Router<Context>.RouteDescription]) {
        var byPath: [String: RoutedPath] = [:]
        for route in routes {
            let path = route.path.description
            let segments = path.split(separator: "/").map { $0.hasPrefix("{") && $0.hasSuffix("}") ? nil : $0 }
            byPath[path, default: RoutedPath(segments: segments, methods: [])].methods.append(route.method)
            // The router answers HEAD wherever it answers GET (`autoGenerateHeadEndpoints`).
            if route.method == .get { byPath[path]?.methods.append(.head) }
        }
        paths = Array(byPath.values)
    }

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError where error.status == .notFound {
            let allowed = allowedMethods(for: request.uri.path)
            // With the method among them, the 404 came from elsewhere than method dispatch.
            guard !allowed.isEmpty, !allowed.contains(request.method) else { throw error }
            let names = Set(allowed.map(\.rawValue)).sorted().joined(separator: ", ")
            var response = JSONResponses.error(
                BrokerError(.methodNotAllowed, "\(request.method) is not allowed on \(request.uri.path); allowed: \(names)"),
                for: request)
            response.headers[.allow] = names
            return response
        }
    }

    /// The methods of every route whose path matches, segment by segment as the router does.
    func allowedMethods(for path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/")
        return paths.filter { routed in
            routed.segments.count == segments.count
                && zip(routed.segments, segments).allSatisfy { pattern, segment in pattern == nil || pattern == segment }
        }.flatMap(\.methods)
    }
}
