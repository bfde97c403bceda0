import BrokerCore
import Hummingbird
import Logging

extension RemoteAddressRequestContext {
    /// The request id that log lines and the `X-Request-ID` header carry.
    var auditRequestID: String {
        if case .string(let requestID)? = logger[metadataKey: "request_id"] { return requestID }
        return self.id
    }
}

extension BrokerServices {
    /// What an audit line says about the request: its id and the client IP.
    package func auditContext(_ request: Request, _ context: some RemoteAddressRequestContext) -> AuditContext {
        AuditContext(
            requestID: context.auditRequestID,
            clientIP: ClientIP.of(request, context: context, trustedProxies: trustedProxies))
    }

    /// The holder of the request's broker session token, as the actor of an administrative
    /// action (401 without a valid one).
    package func actor(of request: Request, _ context: some RemoteAddressRequestContext) async throws -> AdministrativeActor {
        var actor = try await principal(of: request).actor
        actor.context = auditContext(request, context)
        return actor
    }
}
