import BrokerCore
import Hummingbird
import HTTPTypes
import NIOCore

/// The generation-1 client's scaling calls (clients 4.x at `ps.<domain>`: `sliderule.init(...,
/// desired_nodes=N)`, `update_available_servers`, `scaleout`), which the broker passes on to the
/// provisioner (`provisioner_url`) for the holder of a good token, or answers 501 without one
/// configured (``ClusterScaling`` has the rules). Trailing slashes are optional, as on the other
/// generation-1 routes.
///
/// Every answer is JSON, and every error carries `error_msg` and `status` besides `error` and
/// `detail`: the client reads the body before it looks at the status.
struct ScalingRoutes<Context: RemoteAddressRequestContext>: Sendable {
    let services: BrokerServices
    /// Nil without `provisioner_url`.
    let provisioner: ProvisionerClient?

    func register(on router: Router<Context>) {
        let api = router.group("api").add(middleware: ErrorMiddleware(shape: .generation1Scaling))
        api.get("org_num_nodes/:org") { request, context in
            try await forward(request, context) { _ in .readNodeCounts }
        }
        api.put("desired_org_num_nodes/:org/:nodes") { request, context in
            try await forward(request, context) { parameters in
                .setDesiredNodes(try Self.count("nodes", parameters), minutes: nil)
            }
        }
        api.post("desired_org_num_nodes_ttl/:org/:nodes/:ttl") { request, context in
            try await forward(request, context) { parameters in
                .setDesiredNodes(try Self.count("nodes", parameters), minutes: try Self.count("ttl", parameters))
            }
        }
        api.get("org_ip_adr/:org") { request, context in
            try await forward(request, context) { _ in .readAddress }
        }
    }

    /// A path parameter's number, its name in a refusal saying what it is.
    private static func count(_ parameter: String, _ parameters: Parameters) throws -> Int {
        let name = parameter == "ttl" ? "the time to live (minutes)" : "the number of nodes"
        return try ScalingCall.count(try parameters.decoded(parameter), named: name)
    }

    private func forward(
        _ request: Request, _ context: Context, operation: (Parameters) throws -> ScalingCall.Operation
    ) async throws -> Response {
        let call = ScalingCall(organization: try context.parameters.decoded("org"), operation: try operation(context.parameters))
        var request = request
        let token = try request.bearerToken()
        // What would go to the provisioner is read and checked before anything is recorded or asked.
        var body = ByteBuffer()
        if let provisioner {
            _ = try provisioner.target(ProvisionerRequest.pathAndQuery(call.path, request.uri.query))
            body = try await RequestBodyReading.collect(&request, upTo: ProvisionerClient.maximumBodySize)
        }
        let send = provisioner.map { [request] provisioner in
            { (identity: ScalingIdentity) async throws -> ProvisionerResponse in
                try await provisioner.send(outgoing(call, request, body, context, identity), logger: context.logger)
            }
        }
        let answer = try await services.scaling.run(
            call, bearer: token, context: services.auditContext(request, context), forward: send)
        return Response(
            status: .init(code: answer.statusCode),
            headers: [.contentType: answer.contentType, .cacheControl: "no-store"],
            body: .init(byteBuffer: answer.body))
    }

    /// The call as the provisioner receives it: the call's path, the client's query and body
    /// (at most 64 KiB), and the headers of ``ProvisionerRequest/headers(from:identity:origin:requestID:)``.
    private func outgoing(
        _ call: ScalingCall, _ request: Request, _ body: ByteBuffer, _ context: Context, _ identity: ScalingIdentity
    ) throws -> ProvisionerRequest {
        let origin = ProvisionerRequest.Origin(
            clientIP: ClientIP.of(request, context: context, trustedProxies: services.trustedProxies),
            scheme: forwardedScheme(request, context), host: request.head.authority)
        // HEAD is answered as GET without the body (`HeadResponseMiddleware`); the provisioner gets the GET.
        return ProvisionerRequest(
            method: request.method == .head ? .get : request.method, path: call.path, query: request.uri.query,
            headers: try ProvisionerRequest.headers(
                from: request.headers, identity: identity, origin: origin, requestID: context.requestID),
            body: body.readableBytes > 0 ? body : nil)
    }

    /// `https` when a trusted proxy (`trusted_proxies`) says the client spoke it; otherwise the
    /// broker's own `http`.
    private func forwardedScheme(_ request: Request, _ context: Context) -> String {
        guard let peer = context.remoteAddress?.ipAddress.flatMap({ IPAddress($0) }), services.trustedProxies.isTrusted(peer),
            let claimed = request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased(), ["http", "https"].contains(claimed)
        else { return "http" }
        return claimed
    }
}
