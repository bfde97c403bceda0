import Hummingbird
import NIOCore
import Prometheus

/// `GET /metrics`: every metric of the registry in the Prometheus text format (0.0.4).
///
/// ```swift
/// MetricsRoutes(registry: registry).register(on: router)
/// ```
struct MetricsRoutes<Context: RequestContext> {
    let registry: PrometheusCollectorRegistry

    static var contentType: String { "text/plain; version=0.0.4; charset=utf-8" }

    func register(on router: Router<Context>) {
        router.get("metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = Self.contentType
            headers[.cacheControl] = "no-store"
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }
}
