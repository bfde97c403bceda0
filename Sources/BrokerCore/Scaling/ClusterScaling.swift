/// Who a forwarded scaling call is for, as the provisioner learns it from the identity headers
/// a gateway would add: the account, the organization whose cluster it is, and the holder's
/// roles there, as the store says now.
public struct ScalingIdentity: Sendable, Equatable {
    public var account: String
    public var organization: String
    /// E.g. `["owner", "admin", "member"]` (``Role/impliedRoles``).
    public var roles: [String]

    public init(account: String, organization: String, roles: [String]) {
        self.account = account
        self.organization = organization
        self.roles = roles
    }
}

/// What the provisioner answered a forwarded call, as far as the rules here need it.
public protocol ProvisionerAnswer: Sendable {
    var statusCode: Int { get }
}

/// The rules of the generation-1 client's scaling calls. Scaling belongs to another component,
/// the provisioner (`provisioner_url`); the broker decides who may ask it, and records who asked
/// for a change.
///
/// - The caller presents a broker access token (``PresentedTokens``: signature, issuer, expiry,
///   not revoked, its session alive, its account enabled): 401 otherwise.
/// - The token's `org` is the organization in the path, and its holder is an active member of
///   it *now*, as the store says (a removed member is refused at once, whatever the token
///   still claims): 403 otherwise. In an organization whose members GitHub decides
///   (`github_orgs`), a token of a GitHub login is taken at its word, as introspection does.
/// - Without a provisioner: 501 ``ErrorCode/notImplemented``, only once the token passed, so
///   that a stranger learns nothing about the broker's setup.
/// - A call that asks for a change (``ScalingCall/changesState``) is audited as
///   `cluster.scale`: its `success` line is durable before the call is forwarded (in `closed`
///   mode an unrecorded request is not sent), and a `failure` line follows it when the
///   provisioner cannot be reached or refuses (a status outside 2xx). A refusal by the broker
///   after the token was accepted (403) is `denied`. Reading calls are not audited.
///
/// ```swift
/// let answer = try await services.scaling.run(call, bearer: token, context: origin) { identity in
///     try await provisioner.forward(call, for: identity)
/// }
/// ```
public struct ClusterScaling: Sendable {
    public let tokens: PresentedTokens
    public let trail: AuditTrail
    /// Organizations a `github_orgs` mapping admits to.
    public let githubMappedOrganizations: Set<String>

    public init(tokens: PresentedTokens, trail: AuditTrail, githubMappedOrganizations: Set<String> = []) {
        self.tokens = tokens
        self.trail = trail
        self.githubMappedOrganizations = githubMappedOrganizations
    }

    /// What the 501 says, in the words the generation-1 client prints after "Provisioning system
    /// update request error =>".
    public static let notHandledHere =
        "scaling is not handled by this broker: provisioner_url is not set, so the cluster's nodes can be neither read nor changed here"

    /// The identity to forward for `bearer` asking about `organization`'s cluster.
    /// - Throws: 401 for a token that is not good now; 403 ``ErrorCode/forbidden`` for a token of
    ///   another organization, ``ErrorCode/notAMember`` without an active membership.
    public func authorize(bearer: String, organization: String) async throws -> ScalingIdentity {
        try await admit(try await tokens.accept(bearer), to: organization)
    }

    /// Authorizes the call, then hands it to `forward` (nil: no provisioner is configured), with
    /// the audit lines described above.
    public func run<Answer: ProvisionerAnswer>(
        _ call: ScalingCall, bearer: String, context: AuditContext = .none,
        forward: ((ScalingIdentity) async throws -> Answer)?
    ) async throws -> Answer {
        let presented = try await tokens.accept(bearer)
        let identity: ScalingIdentity
        do {
            identity = try await admit(presented, to: call.organization)
        } catch {
            if call.changesState {
                try await record(AuditRefusal(error), actor: presented.user.username, organization: call.organization, context)
            }
            throw error
        }
        guard let forward else { throw BrokerError(.notImplemented, Self.notHandledHere) }
        guard call.changesState else { return try await forward(identity) }
        try await trail.record(
            .clusterScale, .success, actor: identity.account, organization: identity.organization,
            reason: call.auditReason, context: context)
        let answer: Answer
        do {
            answer = try await forward(identity)
        } catch {
            var refusal = AuditRefusal(error)
            refusal.outcome = .failure  // the broker let it through; what followed failed
            try await record(refusal, actor: identity.account, organization: identity.organization, context)
            throw error
        }
        if !(200..<300).contains(answer.statusCode) {
            try await trail.record(
                .clusterScale, .failure, actor: identity.account, organization: identity.organization,
                reason: "provisioner_status=\(answer.statusCode)", context: context)
        }
        return answer
    }

    private func record(_ refusal: AuditRefusal, actor: String, organization: String, _ context: AuditContext) async throws {
        try await trail.record(
            .clusterScale, refusal.outcome, actor: actor, organization: organization, reason: refusal.reason,
            context: context)
    }

    private func admit(_ presented: PresentedTokens.Accepted, to organization: String) async throws -> ScalingIdentity {
        let claims = presented.claims
        let user = presented.user
        guard claims.organization == organization else {
            let held = claims.organization.isEmpty ? "no organization" : claims.organization
            throw BrokerError(.forbidden, "this token is for \(held), not \(organization): log in to \(organization)")
        }
        let role = try await tokens.store.read { tx in
            try await OrganizationAccess.currentRole(ofUser: user.id, in: organization, tx: tx)
        }
        if let role {
            return ScalingIdentity(account: user.username, organization: organization, roles: role.impliedRoles)
        }
        // GitHub, not the store, decides these memberships; the token is as recent as its lifetime.
        if claims.identityProvider == "github", githubMappedOrganizations.contains(organization) {
            return ScalingIdentity(account: user.username, organization: organization, roles: claims.organizationRoles)
        }
        throw BrokerError(.notAMember, "\(user.username) has no active membership in \(organization)")
    }
}
