import Foundation

/// Who may put which name in `aud`. A gateway admits every token naming its cluster, so a
/// cluster name or audience belongs to one organization, wherever it is defined (its cluster
/// name, its token policy, a `github_orgs` team cluster); a deleted organization's names stay
/// reserved until an admin releases them; service audiences (a provisioner, a monitor) are open
/// to every organization's policy and are never cluster names. The store's uniqueness
/// constraint decides every claim (see ``AudienceName``).
extension AccountAdministration {
    /// Makes `name` the organization's. Returns `nil` when it is (or already was) the
    /// organization's, or when it is a service audience and `use` is a policy audience;
    /// otherwise the name as someone else holds it.
    static func claim(
        _ name: String, for organization: Organization, use: AudienceName.Use, _ tx: any StoreTransaction
    ) async throws -> AudienceName? {
        do {
            try await tx.insertAudienceName(AudienceName(name: name, holder: .organization(id: organization.id, use: use)))
            return nil
        } catch StoreError.duplicate {
            // The insert lost to a row that exists now: read who holds it, to say so.
            guard let held = try await tx.audienceName(name) else {
                throw StoreError.engine("audience name \(name) vanished inside a transaction")
            }
            switch held.holder {
            case .organization(let id, let heldUse) where id == organization.id:
                // A cluster or team cluster outlives the policy that also lists it.
                if heldUse == .policyAudience && use != .policyAudience {
                    try await tx.updateAudienceNameUse(name, organizationID: id, to: use)
                }
                return nil
            case .service where use == .policyAudience:
                return nil
            default:
                return held
            }
        }
    }

    /// The refusal of a claim, for the organization's managers: another organization is not named.
    static func refusal(_ held: AudienceName) -> BrokerError {
        switch held.holder {
        case .organization:
            BrokerError(.audienceTaken, "the name \(held.name) is the cluster or an audience of another organization")
        case .reserved:
            BrokerError(
                .audienceTaken,
                "the name \(held.name) is reserved: it belonged to a deleted organization, and only an admin can release it")
        case .service:
            BrokerError(.audienceTaken, "the name \(held.name) is a service audience: it cannot be a cluster name")
        }
    }

    /// Replaces the policy audiences the organization holds with `audiences` (none: `nil`).
    static func claimPolicyAudiences(
        _ audiences: [String]?, for organization: Organization, _ tx: any StoreTransaction
    ) async throws {
        let wanted = (audiences ?? []).filter { $0 != organization.clusterName }
        try await tx.deleteAudienceNames(organizationID: organization.id, use: .policyAudience, keeping: wanted)
        for audience in wanted {
            if let held = try await claim(audience, for: organization, use: .policyAudience, tx) {
                throw refusal(held)
            }
        }
    }

    /// Every held name with the name of the organization holding it, ordered by name.
    public func audienceNames(by actor: AdministrativeActor) async throws -> [(name: AudienceName, organization: String?)] {
        try actor.requireGlobalAdmin("list audience names")
        return try await store.read { tx in
            let names = Dictionary(uniqueKeysWithValues: try await tx.organizations().map { ($0.id, $0.name) })
            return try await tx.audienceNames().map { name in
                if case .organization(let id, _) = name.holder { return (name, names[id]) }
                return (name, nil)
            }
        }
    }

    /// Frees a name a deleted organization left reserved: anyone may claim it afterwards. Only
    /// once no gateway of the old cluster accepts tokens any more should an admin do this.
    public func releaseAudienceName(_ name: String, by actor: AdministrativeActor) async throws {
        let audited = audited(.audienceRelease, by: actor, target: name)
        try await audited.run {
            try actor.requireGlobalAdmin("release audience names")
            try await audited.commit(in: store) { tx in
                if try await tx.deleteReservedAudienceName(name) != nil { return }
                switch try await tx.audienceName(name)?.holder {
                case nil:
                    throw BrokerError(.notFound, "the name \(name) is not reserved")
                case .service?:
                    throw BrokerError(.conflict, "\(name) is a service audience, not a reservation: remove it instead")
                case .organization(let id, _)?:
                    let holder = try await tx.organization(id: id)?.name ?? "an organization"
                    throw BrokerError(.conflict, "\(name) belongs to \(holder): it is reserved only once \(holder) is deleted")
                case .reserved?:
                    throw StoreError.engine("the reservation of \(name) could not be deleted")
                }
            }
        }
    }

    /// Names a service that serves every organization: any organization's policy may list it.
    /// - Throws: 409 `audience_taken` when it is an organization's cluster or audience, or reserved.
    public func addServiceAudience(_ name: String, by actor: AdministrativeActor) async throws {
        let audited = audited(.serviceAudienceAdd, by: actor, target: name)
        try await audited.run {
            try actor.requireGlobalAdmin("name service audiences")
            try NamePolicy.validateOrganizationName(name, what: "a service audience")
            try await audited.commit(in: store) { tx in
                do {
                    try await tx.insertAudienceName(AudienceName(name: name, holder: .service))
                } catch StoreError.duplicate {
                    switch try await tx.audienceName(name)?.holder {
                    case .service?:
                        throw BrokerError(.alreadyExists, "\(name) is already a service audience")
                    case .reserved(let former)?:
                        throw BrokerError(.audienceTaken, "\(name) is reserved: it belonged to the deleted organization \(former)")
                    default:
                        throw BrokerError(.audienceTaken, "\(name) is the cluster or an audience of an organization")
                    }
                }
            }
        }
    }

    /// Removes a service audience that no organization's policy lists any more.
    public func removeServiceAudience(_ name: String, by actor: AdministrativeActor) async throws {
        let audited = audited(.serviceAudienceRemove, by: actor, target: name)
        try await audited.run {
            try actor.requireGlobalAdmin("remove service audiences")
            try await audited.commit(in: store) { tx in
                guard case .service? = try await tx.audienceName(name)?.holder else {
                    throw BrokerError(.notFound, "\(name) is not a service audience")
                }
                guard try await tx.deleteServiceAudience(name) else {
                    let listing = try await tx.organizations().filter { $0.tokenPolicy.audiences?.contains(name) == true }
                    throw BrokerError(
                        .conflict,
                        "the token policy of \(listing.map(\.name).joined(separator: ", ")) lists \(name): change it first")
                }
            }
        }
    }

    /// The start-up check of `github_orgs`: each mapping names an existing organization, and
    /// each team cluster becomes its organization's name. A team cluster that is another
    /// organization's cluster or policy audience, a deleted organization's reserved name or a
    /// service audience stops the start.
    public func registerTeamClusters(_ mappings: [GitHubOrganizationMapping]) async throws {
        try await store.transaction { tx in
            let organizations = try await tx.organizations()
            try mappings.validate(against: organizations)
            let byName = Dictionary(uniqueKeysWithValues: organizations.map { ($0.name, $0) })
            for mapping in mappings {
                guard let organization = byName[mapping.organization] else { continue }
                for cluster in Set(mapping.teams.values).sorted() {
                    guard let held = try await Self.claim(cluster, for: organization, use: .teamCluster, tx) else { continue }
                    let holder: String
                    switch held.holder {
                    case .organization(let id, _):
                        holder = "the cluster or a policy audience of \(organizations.first { $0.id == id }?.name ?? "another organization")"
                    case .reserved(let former):
                        holder = "reserved by the deleted organization \(former) (free it with `broker orgs release-name \(cluster)`)"
                    case .service:
                        holder = "a service audience"
                    }
                    throw ConfigurationError("github_orgs: team cluster \(cluster) of \(mapping.organization) is already \(holder)")
                }
            }
        }
    }
}
