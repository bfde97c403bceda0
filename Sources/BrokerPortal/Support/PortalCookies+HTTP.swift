import HTTPTypes
import Hummingbird

extension PortalCookies {
    /// The value of cookie `name` in the request (see ``value(_:inCookieHeaders:)``).
    func value(_ name: String, in request: Request) -> String? {
        Self.value(name, inCookieHeaders: request.headers[values: .cookie])
    }
}
