import BrokerServer
import HTTPTypes
import Hummingbird

/// `GET /portal/style-<hash>.css`: the stylesheet, cacheable forever (its URL changes with it).
struct AssetRoutes {
    func register(on router: Router<BrokerRequestContext>) {
        router.get(RouterPath(PortalRenderer.stylesheetPath)) { _, _ in
            Response(
                status: .ok,
                headers: [
                    .contentType: "text/css; charset=utf-8",
                    .cacheControl: "public, max-age=31536000, immutable",
                    .xContentTypeOptions: "nosniff",
                ],
                body: .init(byteBuffer: ByteBuffer(bytes: PortalRenderer.stylesheet)))
        }
    }
}
