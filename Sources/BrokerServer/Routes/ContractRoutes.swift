import Hummingbird
import NIOCore

/// `GET /openapi.yaml`: the OpenAPI 3.1 contract of every route, compiled into the binary from
/// `Sources/BrokerServer/Resources/openapi.yaml` (`.embedInCode`): the binary alone serves it.
struct ContractRoutes<Context: RequestContext> {
    let document = ByteBuffer(bytes: PackageResources.openapi_yaml)

    func register(on router: Router<Context>) {
        router.get("openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: document))
        }
    }
}
