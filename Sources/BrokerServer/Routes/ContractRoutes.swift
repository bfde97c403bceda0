import Foundation
import Hummingbird
import NIOCore

/// `GET /openapi.yaml`: the OpenAPI 3.1 contract of every route, as shipped in the resource
/// bundle (`Sources/BrokerServer/Resources/openapi.yaml`).
struct ContractRoutes<Context: RequestContext> {
    /// Read once, when the router is built: a broker whose bundle lacks its contract should fail
    /// at start, not on the first request for it.
    let document: ByteBuffer

    init() {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
            let contents = FileManager.default.contents(atPath: url.path)
        else {
            fatalError("openapi.yaml is missing from the BrokerServer resource bundle, which must sit next to the broker binary")
        }
        document = ByteBuffer(bytes: contents)
    }

    func register(on router: Router<Context>) {
        router.get("openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: document))
        }
    }
}
