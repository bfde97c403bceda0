import BrokerCore
import HTTPTypes
import Hummingbird
import NIOCore

/// The client IP of a request: the socket's peer, or what trusted proxies say in
/// `X-Forwarded-For` (see ``TrustedProxies``).
///
/// ```swift
/// let clientIP = ClientIP.of(request, context: context, trustedProxies: services.trustedProxies)
/// ```
package enum ClientIP {
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    package static func of(_ request: Request, context: some RemoteAddressRequestContext, trustedProxies: TrustedProxies) -> String? {
        trustedProxies.clientIP(
            peer: context.remoteAddress?.ipAddress, forwardedFor: request.headers[values: forwardedFor])
    }
}
