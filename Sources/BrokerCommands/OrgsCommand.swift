import ArgumentParser
import BrokerCore

struct OrgsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orgs", abstract: "Manage organizations.",
        subcommands: [
            Add.self, List.self, Delete.self, Policy.self, Names.self, ReleaseName.self, ServiceAudience.self,
        ])

    struct Names: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the cluster names and audiences, and who holds each.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let names = try await options.withAccounts { try await $0.audienceNames(by: .operator) }
                print(Table.render(
                    ["NAME", "HOLDER", "USE"],
                    names.map { name, organization in
                        switch name.holder {
                        case .organization(_, let use): [name.name, organization ?? "", use.rawValue]
                        case .reserved(let former): [name.name, "(reserved)", "deleted organization \(former)"]
                        case .service: [name.name, "(every organization)", "service"]
                        }
                    }))
            }
        }
    }

    struct ReleaseName: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "release-name",
            abstract: "Free a cluster name or audience a deleted organization left reserved.",
            discussion: """
                Only when no gateway of the old cluster accepts tokens any more: afterwards any \
                organization may claim the name.
                """)
        @OptionGroup var options: GlobalOptions
        @Argument var name: String

        func run() async throws {
            try await reportingErrors {
                try await options.withAccounts { try await $0.releaseAudienceName(name, by: .operator) }
                print("released \(name)")
            }
        }
    }

    struct ServiceAudience: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "service-audience",
            abstract: "Name (or remove) a service that serves every organization; any organization's policy may list it.",
            subcommands: [Add.self, Remove.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Name a service audience (never a cluster name).")
            @OptionGroup var options: GlobalOptions
            @Argument var name: String

            func run() async throws {
                try await reportingErrors {
                    try await options.withAccounts { try await $0.addServiceAudience(name, by: .operator) }
                    print("\(name) is a service audience")
                }
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove a service audience no policy lists.")
            @OptionGroup var options: GlobalOptions
            @Argument var name: String

            func run() async throws {
                try await reportingErrors {
                    try await options.withAccounts { try await $0.removeServiceAudience(name, by: .operator) }
                    print("\(name) is no longer a service audience")
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete an organization with its memberships and sessions.")
        @OptionGroup var options: GlobalOptions
        @Argument var name: String

        func run() async throws {
            try await reportingErrors {
                try await options.withAccounts { try await $0.deleteOrganization(name, by: .operator) }
                print("deleted organization \(name)")
            }
        }
    }

    struct Policy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or set an organization's token policy (access lifetime, audiences).")
        @OptionGroup var options: GlobalOptions
        @Argument var name: String
        @Option(help: "Access-token lifetime in seconds (60 up to the broker's access_lifetime).") var accessLifetime: Int?
        @Option(help: "An audience (cluster or service name) of its tokens; repeat for several.") var audience: [String] = []
        @Flag(help: "Return to the broker's defaults (lifetime access_lifetime, audience the cluster name).") var reset = false

        func run() async throws {
            try await reportingErrors {
                let environment = try await CommandEnvironment.open(options)
                let maximum = environment.configuration.accessLifetime
                let changing = reset || accessLifetime != nil || !audience.isEmpty
                let organization = try await environment.withAccounts { accounts in
                    guard changing else { return try await accounts.tokenPolicy(organization: name, by: .operator) }
                    var policy = reset ? OrganizationTokenPolicy() : try await accounts.tokenPolicy(organization: name, by: .operator).tokenPolicy
                    if let accessLifetime { policy.accessLifetime = accessLifetime }
                    if !audience.isEmpty { policy.audiences = audience }
                    return try await accounts.setTokenPolicy(organization: name, to: policy, brokerAccessLifetime: maximum, by: .operator)
                }
                let lifetime = organization.accessLifetime(brokerMaximum: maximum)
                print("\(organization.name): access tokens live \(lifetime) s, aud \(organization.tokenAudience.joined(separator: " "))")
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an organization.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Organization name: 1–100 letters, digits and -_.") var name: String
        @Option(help: "The cluster name its tokens carry in aud (default: the organization name).")
        var cluster: String?

        func run() async throws {
            try await reportingErrors {
                let org = try await options.withAccounts { try await $0.addOrganization(name, clusterName: cluster, by: .operator) }
                print("created organization \(org.name) (cluster \(org.clusterName))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List organizations.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let orgs = try await options.withAccounts { try await $0.organizations(by: .operator) }
                print(Table.render(
                    ["NAME", "CLUSTER", "CREATED"], orgs.map { [$0.name, $0.clusterName, Table.date($0.createdAt)] }))
            }
        }
    }
}

struct MembersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "members", abstract: "Manage memberships.",
        subcommands: [Add.self, Remove.self, List.self, Requests.self, Approve.self, Deny.self])

    struct Requests: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the pending membership requests of an organization.")
        @OptionGroup var options: GlobalOptions
        @Argument var org: String

        func run() async throws {
            try await reportingErrors {
                let pending = try await options.withAccounts { try await $0.membershipRequests(organization: org, by: .operator) }
                print(Table.render(["USERNAME", "REQUESTED"], pending.map { [$0.username, Table.date($0.requestedAt)] }))
            }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve a pending membership request.")
        @OptionGroup var options: GlobalOptions
        @Argument var org: String
        @Argument var name: String
        @Option(help: "member, owner or admin") var role: Role = .member

        func run() async throws {
            try await reportingErrors {
                try await options.withAccounts {
                    try await $0.approveMembership(organization: org, username: name, role: role, by: .operator)
                }
                print("approved: \(name) is now \(role.rawValue) of \(org)")
            }
        }
    }

    struct Deny: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deny a pending membership request.")
        @OptionGroup var options: GlobalOptions
        @Argument var org: String
        @Argument var name: String

        func run() async throws {
            try await reportingErrors {
                try await options.withAccounts { try await $0.denyMembership(organization: org, username: name, by: .operator) }
                print("denied the request of \(name) to join \(org)")
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a member to an organization (or change an existing member's role).")
        @OptionGroup var options: GlobalOptions
        @Argument var org: String
        @Argument var name: String
        @Option(help: "member, owner or admin") var role: Role = .member

        func run() async throws {
            try await reportingErrors {
                try await options.withAccounts { try await $0.addMember(organization: org, username: name, role: role, by: .operator) }
                print("\(name) is now \(role.rawValue) of \(org)")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a member: their next refresh is refused.")
        @OptionGroup var options: GlobalOptions
        @Argument var org: String
        @Argument var name: String

        func run() async throws {
            try await reportingErrors {
                try await options.withAccounts { try await $0.removeMember(organization: org, username: name, by: .operator) }
                print("removed \(name) from \(org)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the members of an organization.")
        @OptionGroup var options: GlobalOptions
        @Argument var org: String

        func run() async throws {
            try await reportingErrors {
                let members = try await options.withAccounts { try await $0.members(organization: org, by: .operator) }
                print(Table.render(
                    ["USERNAME", "ROLE", "STATE", "SINCE"],
                    members.map {
                        [
                            $0.username, $0.membership.role.rawValue, $0.membership.isActive ? "active" : "inactive",
                            Table.date($0.membership.createdAt),
                        ]
                    }))
            }
        }
    }
}

extension Role: ExpressibleByArgument {}
