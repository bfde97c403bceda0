import BrokerCore
import BrokerCrypto
import Foundation
import Hummingbird

/// The generation-1 SlideRule API (`ps.<domain>/api/...`), matched to the letter: clients
/// 2.x–5.0.2 parse these bodies as they are. Trailing slashes are optional.
struct Generation1Routes<Context: RemoteAddressRequestContext> {
    let services: BrokerServices

    func register(on router: Router<Context>) {
        let api = router.group("api")
        api.post("org_token") { request, context in try await login(request, context) }
        api.post("org_token/refresh") { request, context in try await refresh(request, context) }
        api.post("token/blacklist") { request, context in try await blacklist(request, context) }
        api.get("membership_status/:org") { request, context in try await membershipStatus(request, context) }
    }

    func login(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let body = try await JSONRequestBody.read(&request)
        let username = try body.string("username")
        let password = try body.password()
        let organization = try body.string("org_name")
        let bundle = try await services.orgTokens.login(
            username: username, password: password, organization: organization,
            context: services.auditContext(request, context))
        return Self.bundleResponse(bundle)
    }

    func refresh(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let body = try await JSONRequestBody.read(&request)
        let presented = try body.string("refresh")
        let bundle = try await services.orgTokens.refresh(presented, context: services.auditContext(request, context))
        return Self.bundleResponse(bundle)
    }

    func blacklist(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let body = try await JSONRequestBody.read(&request)
        let presented = try body.string("refresh")
        try await services.orgTokens.revoke(presented, context: services.auditContext(request, context))
        return JSONResponses.make(.ok) { json in
            json.beginObject()
            json.endObject()
        }
    }

    func membershipStatus(_ request: Request, _ context: Context) async throws -> Response {
        let token = try request.bearerToken()
        let organization = try context.parameters.decoded("org")
        let active = try await services.orgTokens.membershipStatus(bearer: token, organization: organization)
        return JSONResponses.make(.ok) { json in
            json.beginObject()
            json.key("active"); json.bool(active)
            json.endObject()
        }
    }

    /// Lifetimes are strings of seconds ("3600.0"): the client parses them with `float()`.
    static func bundleResponse(_ bundle: TokenBundle) -> Response {
        JSONResponses.make(.ok) { json in
            json.beginObject()
            json.key("access"); json.string(bundle.access)
            json.key("refresh"); json.string(bundle.refresh)
            json.key("access_lifetime"); json.string("\(bundle.accessLifetime).0")
            json.key("refresh_lifetime"); json.string("\(bundle.refreshLifetime).0")
            json.key("exp"); json.string(Self.generation1Expiry(bundle.accessExpiresAt))
            json.endObject()
        }
    }

    /// Python's `%Y-%m-%dT%H:%M:%S%Z` of a UTC datetime, e.g. `2026-11-29T10:00:00UTC`.
    static func generation1Expiry(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))UTC"
    }
}
