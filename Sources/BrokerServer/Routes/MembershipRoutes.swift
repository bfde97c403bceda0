import BrokerCore
import BrokerCrypto
import Hummingbird

/// Membership requests, members and token policy of one organization, under
/// `/api/orgs/{org}/`. Authenticated by a broker session token; owners and admins of the
/// organization (and global admins) manage it.
struct MembershipRoutes<Context: RemoteAddressRequestContext> {
    let services: BrokerServices

    var accounts: AccountAdministration { services.accounts }

    func register(on router: Router<Context>) {
        let organization = router.group("api/orgs/:org")
        organization.post("membership-requests") { request, context in
            let actor = try await services.actor(of: request, context)
            let name = try context.parameters.decoded("org")
            let pending = try await accounts.requestMembership(organization: name, by: actor)
            return JSONResponses.make(.created) { json in json.membershipRequest(pending, organization: name) }
        }
        organization.get("membership-requests") { request, context in
            let actor = try await services.actor(of: request, context)
            let name = try context.parameters.decoded("org")
            let pending = try await accounts.membershipRequests(organization: name, by: actor)
            return JSONResponses.list("requests", pending) { json, item in json.membershipRequest(item, organization: name) }
        }
        organization.post("membership-requests/:username/approve") { request, context in
            let actor = try await services.actor(of: request, context)
            let (name, username) = (try context.parameters.decoded("org"), try context.parameters.decoded("username"))
            var request = request
            let body = try await JSONRequestBody.readOptional(&request)
            let role = try Self.role(try body.optionalString("role") ?? Role.member.rawValue)
            let membership = try await accounts.approveMembership(
                organization: name, username: username, role: role, by: actor)
            return JSONResponses.make(.ok) { json in json.membership(membership, username: username, organization: name) }
        }
        organization.post("membership-requests/:username/deny") { request, context in
            let actor = try await services.actor(of: request, context)
            let (name, username) = (try context.parameters.decoded("org"), try context.parameters.decoded("username"))
            try await accounts.denyMembership(organization: name, username: username, by: actor)
            return Response(status: .noContent)
        }
        organization.get("members") { request, context in
            let actor = try await services.actor(of: request, context)
            let name = try context.parameters.decoded("org")
            let members = try await accounts.members(organization: name, by: actor)
            return JSONResponses.list("members", members) { json, member in
                json.membership(member.membership, username: member.username, organization: name)
            }
        }
        organization.put("members/:username") { request, context in
            let actor = try await services.actor(of: request, context)
            let (name, username) = (try context.parameters.decoded("org"), try context.parameters.decoded("username"))
            var request = request
            let body = try await JSONRequestBody.read(&request)
            let membership = try await accounts.changeRole(
                organization: name, username: username, to: try Self.role(try body.string("role")), by: actor)
            return JSONResponses.make(.ok) { json in json.membership(membership, username: username, organization: name) }
        }
        organization.delete("members/:username") { request, context in
            let actor = try await services.actor(of: request, context)
            let (name, username) = (try context.parameters.decoded("org"), try context.parameters.decoded("username"))
            try await accounts.removeMember(organization: name, username: username, by: actor)
            return Response(status: .noContent)
        }
        organization.get("policy") { request, context in
            let actor = try await services.actor(of: request, context)
            let found = try await accounts.tokenPolicy(organization: try context.parameters.decoded("org"), by: actor)
            return JSONResponses.make(.ok) { json in json.tokenPolicy(found) }
        }
        organization.put("policy") { request, context in
            let actor = try await services.actor(of: request, context)
            var request = request
            let body = try await JSONRequestBody.read(&request)
            let policy = OrganizationTokenPolicy(
                accessLifetime: try body.optionalInteger("access_lifetime", in: 1...Int64(Int32.max)).map { Int($0) },
                audiences: try body.optionalStrings("audiences"))
            let updated = try await accounts.setTokenPolicy(
                organization: try context.parameters.decoded("org"), to: policy,
                brokerAccessLifetime: services.configuration.accessLifetime, by: actor)
            return JSONResponses.make(.ok) { json in json.tokenPolicy(updated) }
        }
    }

    static func role(_ name: String) throws -> Role {
        guard let role = Role(rawValue: name) else {
            throw BrokerError(.invalidRequest, "role must be one of member, owner, admin")
        }
        return role
    }
}
