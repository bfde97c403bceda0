import ArgumentParser
import BrokerCore
import Foundation

struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users", abstract: "Manage accounts (works directly on the store).",
        subcommands: [
            Add.self, Passwd.self, Disable.self, Enable.self, List.self, Import.self, LinkGitHub.self, SetRole.self,
            Delete.self, Collisions.self,
        ])

    struct Collisions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List users and organizations whose names read like an older one's.",
            discussion: """
                Rows created before names were compared as a person reads them (case, Unicode \
                normalization, look-alike characters) may collide. They keep working; this lists them \
                until one of each pair is deleted (docs/operations.md).
                """)
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let collisions = try await options.withAccounts { try await $0.nameCollisions() }
                for collision in collisions {
                    print("\(collision.kind.rawValue) \(collision.name) reads like \(collision.readsLike ?? "(a deleted \(collision.kind.rawValue))")")
                }
                if collisions.isEmpty { print("no name collisions") }
            }
        }
    }

    struct SetRole: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "role", abstract: "Set an account's global role: admin, introspector or none.")
        @OptionGroup var options: GlobalOptions
        @Argument var name: String
        @Argument(help: "admin, introspector or none") var role: String

        func run() async throws {
            try await reportingErrors {
                let parsed: GlobalRole?
                if role == "none" { parsed = nil } else {
                    guard let known = GlobalRole(rawValue: role) else {
                        throw ValidationError("the role must be admin, introspector or none")
                    }
                    parsed = known
                }
                try await options.withAccounts { try await $0.setGlobalRole(name, to: parsed, by: .operator) }
                print("\(name) now has the global role \(role)")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete an account with its memberships and sessions.")
        @OptionGroup var options: GlobalOptions
        @Argument var name: String

        func run() async throws {
            try await reportingErrors {
                try await options.withAccounts { try await $0.deleteUser(name, by: .operator) }
                print("deleted \(name)")
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an account.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Username: 1–150 letters, digits and @.+-_") var name: String
        @Flag(help: "Read the password as one line from standard input.") var passwordStdin = false
        @Flag(help: "Create the account without a password (it cannot log in with one).") var noPassword = false
        @Flag(help: "Make the account a global admin (it may use the admin API).") var admin = false

        func run() async throws {
            try await reportingErrors {
                try NamePolicy.validateUsername(name)
                let password = noPassword ? nil : try PasswordInput.read(fromStandardInput: passwordStdin)
                if let password { try PasswordPolicy.validateNew(password) }
                let user = try await options.withAccounts {
                    try await $0.addUser(name, password: password, globalRole: admin ? .admin : nil, by: .operator)
                }
                print("created \(admin ? "admin" : "user") \(user.username) (id \(user.id))")
            }
        }
    }

    struct Passwd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set an account's password.")
        @OptionGroup var options: GlobalOptions
        @Argument var name: String
        @Flag(help: "Read the password as one line from standard input.") var passwordStdin = false

        func run() async throws {
            try await reportingErrors {
                let password = try PasswordInput.read(fromStandardInput: passwordStdin)
                try PasswordPolicy.validateNew(password)
                try await options.withAccounts { try await $0.setPassword(name, password: password, by: .operator) }
                print("password of \(name) changed")
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disable an account: it can no longer log in or refresh.")
        @OptionGroup var options: GlobalOptions
        @Argument var name: String

        func run() async throws {
            try await reportingErrors {
                try await options.withAccounts { try await $0.setActive(name, false, by: .operator) }
                print("disabled \(name)")
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled account.")
        @OptionGroup var options: GlobalOptions
        @Argument var name: String

        func run() async throws {
            try await reportingErrors {
                try await options.withAccounts { try await $0.setActive(name, true, by: .operator) }
                print("enabled \(name)")
            }
        }
    }

    struct LinkGitHub: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "link-github",
            abstract: "Link a GitHub user to an account: logging in with that GitHub identity gives the account's memberships.",
            discussion: """
                The GitHub identity is GitHub's numeric user id (`curl https://api.github.com/users/LOGIN` shows it as \
                `id`), never the login, which can be renamed and re-registered by someone else. Without --github-id, \
                the first verified GitHub login with LOGIN records its id, and from then on only that id gets the account.
                """)
        @OptionGroup var options: GlobalOptions
        @Argument var name: String
        @Argument(help: "The GitHub login (omit with --unlink).") var login: String?
        @Option(name: .customLong("github-id"), help: "GitHub's numeric user id of LOGIN: only this GitHub user gets the account, from the first login on.")
        var githubID: Int64?
        @Flag(help: "Remove the link instead.") var unlink = false

        func run() async throws {
            try await reportingErrors {
                guard unlink == (login == nil) else {
                    throw ValidationError("give either a GitHub login or --unlink")
                }
                if let githubID {
                    guard !unlink else { throw ValidationError("--github-id cannot be combined with --unlink") }
                    guard githubID > 0 else { throw ValidationError("--github-id must be a positive integer") }
                }
                try await options.withAccounts { try await $0.linkGitHub(name, login: login, githubID: githubID, by: .operator) }
                let id = githubID.map { " (GitHub user id \($0))" } ?? ""
                print(login.map { "linked \(name) to GitHub login \($0)\(id)" } ?? "unlinked \(name) from GitHub")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let users = try await options.withAccounts { try await $0.users() }
                print(Table.render(
                    ["ID", "USERNAME", "STATE", "ROLE", "PASSWORD", "GITHUB", "GITHUB_ID", "CREATED"],
                    users.map { user in
                        [
                            "\(user.id)", user.username, user.isActive ? "active" : "disabled", user.globalRole?.rawValue ?? "-",
                            Self.passwordKind(user.passwordHash), user.githubLogin ?? "-", user.githubID.map(String.init) ?? "-",
                            Table.date(user.createdAt),
                        ]
                    }))
            }
        }

        /// The kind of hash, never the hash itself.
        static func passwordKind(_ hash: String?) -> String {
            guard let hash else { return "none" }
            if hash.hasPrefix("$argon2id$") { return "argon2id" }
            if let scheme = hash.split(separator: "$").first { return String(scheme) }
            return "other"
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import accounts from Django's `manage.py dumpdata auth.user` JSON.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The dumpdata JSON file.") var file: String

        func run() async throws {
            try await reportingErrors {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw BrokerError(.notFound, "cannot read \(file)")
                }
                let report = try await options.withAccounts { accounts in
                    try await DjangoUserImport(store: accounts.store, clock: accounts.clock).run(data)
                }
                for entry in report.skipped { print("skipped \(entry.name): \(entry.reason)") }
                for entry in report.rejected { print("rejected \(entry.name): \(entry.reason)") }
                print("imported \(report.imported.count), skipped \(report.skipped.count), rejected \(report.rejected.count)")
            }
        }
    }
}

/// Plain aligned columns for terminal listings.
enum Table {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func date(_ date: Date?) -> String {
        guard let date else { return "-" }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}
