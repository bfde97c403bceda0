import ArgumentParser
import BrokerCore
import Foundation

/// `broker invites`: invitations to the portal's sign-up, made by the operator (actor `cli`),
/// who may invite to any organization or to an account alone.
struct InvitesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invites", abstract: "Invite people to create an account at the portal.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an invitation and print its code (shown once: the broker keeps only its hash).",
            discussion: """
                With --org the new account joins the organization with --role; without, it is an \
                account alone. The code works at /signup once, until it expires (portal_signup: \
                open or invite).
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The organization the new account joins (default: none, an account alone).") var org: String?
        @Option(help: "Its role there: member, owner or admin (only with --org).") var role: Role = .member
        @Option(help: "Seconds until it expires: 60 to 2592000 (30 days).") var expires: Int = Invitation.defaultLifetime

        func validate() throws {
            if org == nil, role != .member { throw ValidationError("--role needs --org: an account alone has no role") }
        }

        func run() async throws {
            try await reportingErrors {
                let (invitation, code) = try await options.withAccounts {
                    try await $0.createInvitation(organization: org, role: role, lifetime: expires, by: .operator)
                }
                let grants = org.map { "\(invitation.role.rawValue) of \($0)" } ?? "an account without an organization"
                print("invitation \(invitation.id): \(grants), expires \(Table.date(invitation.expiresAt))")
                print("code: \(code)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List an organization's invitations, or (without --org) the account-only ones; newest first.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "The organization (default: the invitations to an account alone).") var org: String?

        func run() async throws {
            try await reportingErrors {
                let now = Date()
                let invitations = try await options.withAccounts { try await $0.invitations(organization: org, by: .operator) }
                print(Table.render(
                    ["ID", "ROLE", "STATE", "CREATED", "EXPIRES"],
                    invitations.map { invitation in
                        let state =
                            invitation.usedAt.map { "used \(Table.date($0))" } ?? (invitation.isOpen(at: now) ? "open" : "expired")
                        return [
                            invitation.id, invitation.role.rawValue, state, Table.date(invitation.createdAt),
                            Table.date(invitation.expiresAt),
                        ]
                    }))
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Withdraw an invitation: its code no longer works.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The invitation's id (from create or list), not its code.") var id: String

        func run() async throws {
            try await reportingErrors {
                try await options.withAccounts { try await $0.revokeInvitation(id: id, by: .operator) }
                print("revoked invitation \(id)")
            }
        }
    }
}
