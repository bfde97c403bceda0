import BrokerCore
import BrokerCrypto
import Hummingbird

/// The global admin API under `/api/admin/`: users, organizations, sessions and signing keys.
/// Authenticated by a broker session token whose holder is a global admin (403 otherwise).
struct AdminRoutes<Context: RemoteAddressRequestContext> {
    let services: BrokerServices

    var accounts: AccountAdministration { services.accounts }

    func register(on router: Router<Context>) {
        let admin = router.group("api/admin")
        registerUsers(on: admin)
        registerSessions(on: admin)
        registerOrganizations(on: admin)
        registerAudienceNames(on: admin)
        registerKeys(on: admin)
    }

    private func actor(_ request: Request, _ context: Context) async throws -> AdministrativeActor {
        try await services.actor(of: request, context)
    }

    private func registerUsers(on admin: RouterGroup<Context>) {
        admin.get("users") { request, context in
            let actor = try await actor(request, context)
            let cursor = try Self.queryInteger(request, "after", in: 0...Int64.max) ?? 0
            let limit = try Self.queryInteger(request, "limit", in: 1...Int64(AccountAdministration.maximumPageSize)) ?? 50
            let page = try await accounts.users(after: cursor, limit: Int(limit), by: actor)
            return JSONResponses.make(.ok) { json in
                json.beginObject()
                json.key("users")
                json.beginArray()
                for user in page.users { json.user(user) }
                json.endArray()
                json.key("next")
                if let next = page.next { json.string(String(next)) } else { json.null() }
                json.endObject()
            }
        }
        admin.post("users") { request, context in
            let actor = try await actor(request, context)
            var request = request
            let body = try await JSONRequestBody.read(&request)
            let role = try Self.globalRole(try body.optionalString("global_role"))
            let user = try await accounts.addUser(
                try body.string("username"), password: try body.optionalString("password"), globalRole: role, by: actor)
            return JSONResponses.make(.created) { json in json.user(user) }
        }
        admin.get("users/:username") { request, context in
            let user = try await accounts.user(named: try context.parameters.decoded("username"), by: try await actor(request, context))
            return JSONResponses.make(.ok) { json in json.user(user) }
        }
        admin.delete("users/:username") { request, context in
            try await accounts.deleteUser(try context.parameters.decoded("username"), by: try await actor(request, context))
            return Response(status: .noContent)
        }
        admin.post("users/:username/disable") { request, context in
            try await setActive(request, context, false)
        }
        admin.post("users/:username/enable") { request, context in
            try await setActive(request, context, true)
        }
        admin.post("users/:username/password") { request, context in
            let actor = try await actor(request, context)
            var request = request
            let body = try await JSONRequestBody.read(&request)
            try await accounts.setPassword(
                try context.parameters.decoded("username"), password: try body.string("password"), by: actor)
            return Response(status: .noContent)
        }
        admin.put("users/:username/role") { request, context in
            let actor = try await actor(request, context)
            var request = request
            let body = try await JSONRequestBody.read(&request)
            let user = try await accounts.setGlobalRole(
                try context.parameters.decoded("username"), to: try Self.globalRole(try body.optionalString("global_role")),
                by: actor)
            return JSONResponses.make(.ok) { json in json.user(user) }
        }
    }

    private func setActive(_ request: Request, _ context: Context, _ active: Bool) async throws -> Response {
        let username = try context.parameters.decoded("username")
        try await accounts.setActive(username, active, by: try await actor(request, context))
        let user = try await accounts.user(named: username, by: .operator)
        return JSONResponses.make(.ok) { json in json.user(user) }
    }

    private func registerSessions(on admin: RouterGroup<Context>) {
        admin.get("users/:username/sessions") { request, context in
            let sessions = try await accounts.sessions(
                of: try context.parameters.decoded("username"), by: try await actor(request, context))
            return JSONResponses.list("sessions", sessions) { json, session in
                json.session(session.family, organization: session.organization)
            }
        }
        admin.delete("users/:username/sessions") { request, context in
            let revoked = try await accounts.revokeAllSessions(
                of: try context.parameters.decoded("username"), by: try await actor(request, context))
            return JSONResponses.make(.ok) { json in
                json.beginObject()
                json.key("revoked"); json.int(Int64(revoked))
                json.endObject()
            }
        }
        admin.delete("users/:username/sessions/:session") { request, context in
            try await accounts.revokeSession(
                try context.parameters.decoded("session"), of: try context.parameters.decoded("username"),
                by: try await actor(request, context))
            return Response(status: .noContent)
        }
    }

    private func registerOrganizations(on admin: RouterGroup<Context>) {
        admin.get("orgs") { request, context in
            let organizations = try await accounts.organizations(by: try await actor(request, context))
            return JSONResponses.list("orgs", organizations) { json, organization in json.organization(organization) }
        }
        admin.post("orgs") { request, context in
            let actor = try await actor(request, context)
            var request = request
            let body = try await JSONRequestBody.read(&request)
            let organization = try await accounts.addOrganization(
                try body.string("name"), clusterName: try body.optionalString("cluster_name"), by: actor)
            return JSONResponses.make(.created) { json in json.organization(organization) }
        }
        admin.delete("orgs/:org") { request, context in
            try await accounts.deleteOrganization(try context.parameters.decoded("org"), by: try await actor(request, context))
            return Response(status: .noContent)
        }
    }

    /// Who holds each cluster name and audience; releasing reserved names; service audiences.
    private func registerAudienceNames(on admin: RouterGroup<Context>) {
        admin.get("audience-names") { request, context in
            let names = try await accounts.audienceNames(by: try await actor(request, context))
            return JSONResponses.list("audience_names", names) { json, held in
                json.audienceName(held.name, organization: held.organization)
            }
        }
        admin.delete("audience-names/:name") { request, context in
            try await accounts.releaseAudienceName(try context.parameters.decoded("name"), by: try await actor(request, context))
            return Response(status: .noContent)
        }
        admin.put("service-audiences/:name") { request, context in
            try await accounts.addServiceAudience(try context.parameters.decoded("name"), by: try await actor(request, context))
            return Response(status: .noContent)
        }
        admin.delete("service-audiences/:name") { request, context in
            try await accounts.removeServiceAudience(try context.parameters.decoded("name"), by: try await actor(request, context))
            return Response(status: .noContent)
        }
    }

    private func registerKeys(on admin: RouterGroup<Context>) {
        admin.get("keys") { request, context in
            let keys = try services.keys.list(by: try await actor(request, context))
            return Self.keysResponse(keys)
        }
        admin.post("keys/rotate") { request, context in
            let actor = try await actor(request, context)
            var request = request
            let body = try await JSONRequestBody.readOptional(&request)
            let snapshot = try await services.keys.rotate(force: try body.optionalBool("force") ?? false, by: actor)
            return Self.keysResponse(snapshot.keys.map(\.metadata))
        }
        admin.post("keys/:kid/retire") { request, context in
            let snapshot = try await services.keys.retire(
                kid: try context.parameters.decoded("kid"), by: try await actor(request, context))
            return Self.keysResponse(snapshot.keys.map(\.metadata))
        }
    }

    static func keysResponse(_ keys: [KeyMetadata]) -> Response {
        JSONResponses.list("keys", keys) { json, key in json.signingKey(key) }
    }

    static func globalRole(_ name: String?) throws -> GlobalRole? {
        guard let name else { return nil }
        guard let role = GlobalRole(rawValue: name) else {
            throw BrokerError(.invalidRequest, "global_role must be admin, introspector or null")
        }
        return role
    }

    static func queryInteger(_ request: Request, _ name: String, in range: ClosedRange<Int64>) throws -> Int64? {
        guard let text = request.uri.queryParameters[name[...]] else { return nil }
        guard let value = Int64(text), range.contains(value) else {
            throw BrokerError(.invalidRequest, "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }
}
