/// A name that may appear in the `aud` claim, and who holds it. A gateway admits every token
/// whose `aud` names its cluster, so each name has one holder: the store enforces it with a
/// uniqueness constraint (never a read followed by a write).
public struct AudienceName: Sendable, Equatable {
    public var name: String
    public var holder: Holder

    public init(name: String, holder: Holder) {
        self.name = name
        self.holder = holder
    }

    /// Why an organization holds a name.
    public enum Use: String, Sendable, CaseIterable {
        /// The organization's own cluster name (`broker orgs add --cluster`).
        case cluster
        /// An audience of its token policy.
        case policyAudience = "audience"
        /// A team cluster of its `github_orgs` mapping in the configuration.
        case teamCluster = "team_cluster"
    }

    public enum Holder: Sendable, Equatable {
        /// One organization's name; no other organization's token may carry it.
        case organization(id: Int64, use: Use)
        /// The name of an organization that was deleted: nobody may claim it (a gateway of the
        /// old cluster may still be running) until an admin releases it.
        case reserved(formerOrganization: String)
        /// A service that serves every organization (a provisioner, a monitor): any
        /// organization's policy may list it; it is never a cluster name.
        case service
    }
}
