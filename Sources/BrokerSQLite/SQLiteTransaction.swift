import BrokerCore
import BrokerSync
import Foundation
import SQLiteNIO

/// The ``StoreTransaction`` that ``SQLiteStore/transaction(_:)`` hands to its body.
///
/// It runs statements on the store's connection while the store holds its transaction gate: on
/// the connection's thread, directly when the body runs there (the store runs it with that thread
/// as its executor preference). Once the transaction has ended (committed or rolled back) every
/// method throws `StoreError.engine("transaction is closed")`: the check and the statement happen
/// under one lock on that thread, and the store closes the transaction before its `COMMIT` or
/// `ROLLBACK`, so no statement of this transaction can ever run after its end.
final class SQLiteTransaction: StoreTransaction {
    private let connection: DatabaseConnection
    private let isOpen = Locked(true)

    init(connection: DatabaseConnection) {
        self.connection = connection
    }

    /// Refuses every later statement.
    func close() {
        self.isOpen.withLock { $0 = false }
    }

    // MARK: Execution

    /// Runs one statement of the transaction.
    ///
    /// - Parameters:
    ///   - duplicate: what to name in ``StoreError/duplicate(_:)`` when a UNIQUE or PRIMARY KEY
    ///     constraint fails (given SQLite's message, which names the column).
    ///   - missingReference: what to name in ``StoreError/notFound(_:)`` when a FOREIGN KEY
    ///     constraint fails. Called inside the transaction (a failed statement is undone alone, the
    ///     transaction stays usable), so it may query.
    private func execute(
        _ sql: String,
        _ binds: [SQLiteData] = [],
        duplicate: ((String) -> String)? = nil,
        missingReference: (() async throws -> String)? = nil
    ) async throws -> [DatabaseRow] {
        try Task.checkCancellation()
        let (connection, isOpen) = (self.connection, self.isOpen)
        do {
            // Checked on the connection's thread, where COMMIT and ROLLBACK run too: no statement
            // of this transaction runs after its end.
            return try await connection.thread.run {
                try isOpen.withLock { isOpen in
                    guard isOpen else { throw StoreError.engine("transaction is closed") }
                    return try connection.rowsHere(sql, binds)
                }
            }
        } catch let error as SQLiteFailure where error.isUniquenessViolation && duplicate != nil {
            throw StoreError.duplicate(duplicate!(error.message))
        } catch let error as SQLiteFailure where error.isForeignKeyViolation && missingReference != nil {
            throw StoreError.notFound(try await missingReference!())
        } catch {
            throw SQLiteErrors.storeError(error)
        }
    }

    /// Runs an UPDATE … RETURNING and throws ``StoreError/notFound(_:)`` if it changed no row.
    private func update(_ sql: String, _ binds: [SQLiteData], notFound what: String) async throws {
        if try await self.execute(sql, binds).isEmpty {
            throw StoreError.notFound(what)
        }
    }

    private func exists(_ sql: String, _ binds: [SQLiteData]) async throws -> Bool {
        try await !self.execute(sql, binds).isEmpty
    }

    /// Names whichever of a user and an organization does not exist.
    private func missingUserOrOrganization(userID: Int64, organizationID: Int64) async throws -> String {
        if try await !self.exists("SELECT 1 FROM organizations WHERE id = ?", [.id(organizationID)]) {
            return "organization \(organizationID)"
        }
        if try await !self.exists("SELECT 1 FROM users WHERE id = ?", [.id(userID)]) {
            return "user \(userID)"
        }
        return "organization \(organizationID) or user \(userID)"
    }

    // MARK: Users

    private static let userColumns =
        "id, username, password_hash, is_active, created_at, github_login, github_id, global_role, credential_version, "
        + "session_version"

    static func versions(from row: DatabaseRow) throws -> AccountVersions {
        try AccountVersions(
            credential: CredentialVersion(rawValue: row.int64("credential_version")),
            session: SessionVersion(rawValue: row.int64("session_version")))
    }

    static func user(from row: DatabaseRow) throws -> User {
        try User(
            id: row.int64("id"),
            username: row.string("username"),
            passwordHash: row.optionalString("password_hash"),
            isActive: row.bool("is_active"),
            createdAt: row.date("created_at"),
            githubLogin: row.optionalString("github_login"),
            githubID: row.optionalInt64("github_id"),
            globalRole: row.optionalString("global_role").map { name in
                guard let role = GlobalRole(rawValue: name) else {
                    throw StoreError.engine("unknown role in column users.global_role")
                }
                return role
            },
            versions: versions(from: row)
        )
    }

    func insertUser(_ user: NewUser) async throws -> User {
        let forms = AccountName.storedForms(of: user.username)
        let rows = try await self.execute(
            // A NULL id takes the next free one.
            """
            INSERT INTO users (id, username, password_hash, is_active, created_at, github_login, github_id, global_role,
                username_key, username_skeleton)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id, credential_version, session_version
            """,
            [
                user.preferredID.map(SQLiteData.id) ?? .null, .text(user.username), .nullableText(user.passwordHash),
                .bool(user.isActive), .date(user.createdAt), .nullableText(user.githubLogin),
                user.githubID.map(SQLiteData.id) ?? .null, .nullableText(user.globalRole?.rawValue),
                .text(forms.key), .text(forms.skeleton),
            ],
            duplicate: { message in
                if message.contains("github_login") { return "GitHub login \(user.githubLogin ?? "")" }
                if message.contains("github_id") { return "GitHub user id \(user.githubID.map(String.init) ?? "")" }
                return "user \(user.username)"
            }
        )
        guard let row = rows.first else { throw StoreError.engine("INSERT INTO users returned no id") }
        return try User(
            id: row.int64("id"),
            username: user.username,
            passwordHash: user.passwordHash,
            isActive: user.isActive,
            createdAt: user.createdAt,
            githubLogin: user.githubLogin,
            githubID: user.githubID,
            globalRole: user.globalRole,
            versions: Self.versions(from: row)
        )
    }

    func user(githubLogin login: String) async throws -> User? {
        try await self.execute(
            "SELECT \(Self.userColumns) FROM users WHERE github_login = ? COLLATE NOCASE", [.text(login)]
        ).first.map(Self.user(from:))
    }

    func user(githubID: Int64) async throws -> User? {
        try await self.execute(
            "SELECT \(Self.userColumns) FROM users WHERE github_id = ?", [.id(githubID)]
        ).first.map(Self.user(from:))
    }

    func setGitHubLink(userID: Int64, login: String?, id: Int64?) async throws {
        let rows = try await self.execute(
            "UPDATE users SET github_login = ?, github_id = ? WHERE id = ? RETURNING id",
            [.nullableText(login), id.map(SQLiteData.id) ?? .null, .id(userID)],
            duplicate: { message in
                message.contains("github_id") ? "GitHub user id \(id.map(String.init) ?? "")" : "GitHub login \(login ?? "")"
            }
        )
        if rows.isEmpty { throw StoreError.notFound("user \(userID)") }
    }

    func user(named username: String) async throws -> User? {
        try await self.execute(
            """
            SELECT \(Self.userColumns) FROM users WHERE username_key = ?
            ORDER BY username = ? DESC, username_collision IS NOT NULL, id LIMIT 1
            """,
            [.text(AccountName.key(of: username)), .text(username)]
        ).first.map(Self.user(from:))
    }

    func user(confusableWith name: String) async throws -> User? {
        try await self.execute(
            """
            SELECT \(Self.userColumns) FROM users WHERE username_skeleton = ?
            ORDER BY username_collision IS NOT NULL, id LIMIT 1
            """,
            [.text(AccountName.storedForms(of: name).skeleton)]
        ).first.map(Self.user(from:))
    }

    func nameCollisions() async throws -> [NameCollision] {
        try await self.execute(
            """
            SELECT 'user' AS kind, n.username AS name, o.username AS reads_like
            FROM users AS n LEFT JOIN users AS o ON o.id = n.username_collision
            WHERE n.username_collision IS NOT NULL
            UNION ALL
            SELECT 'organization', n.name, o.name
            FROM organizations AS n LEFT JOIN organizations AS o ON o.id = n.name_collision
            WHERE n.name_collision IS NOT NULL
            ORDER BY kind DESC, name
            """
        ).map { row in
            NameCollision(
                kind: try row.string("kind") == "user" ? .user : .organization, name: try row.string("name"),
                readsLike: try row.optionalString("reads_like"))
        }
    }

    func user(id: Int64) async throws -> User? {
        try await self.execute(
            "SELECT \(Self.userColumns) FROM users WHERE id = ?", [.id(id)]
        ).first.map(Self.user(from:))
    }

    func users() async throws -> [User] {
        try await self.execute("SELECT \(Self.userColumns) FROM users ORDER BY id").map(Self.user(from:))
    }

    func users(afterID: Int64, limit: Int) async throws -> [User] {
        try await self.execute(
            "SELECT \(Self.userColumns) FROM users WHERE id > ? ORDER BY id LIMIT ?",
            [.id(afterID), .integer(SQLiteInt64(max(0, limit)))]
        ).map(Self.user(from:))
    }

    func setGlobalRole(userID: Int64, to role: GlobalRole?) async throws {
        try await self.update(
            "UPDATE users SET global_role = ? WHERE id = ? RETURNING id",
            [.nullableText(role?.rawValue), .id(userID)],
            notFound: "user \(userID)"
        )
    }

    func deleteUser(id: Int64) async throws -> Bool {
        guard try await self.exists("DELETE FROM users WHERE id = ? RETURNING id", [.id(id)]) else { return false }
        try await self.handOverName(table: "users", name: "username", from: id)
        return true
    }

    /// A deleted row that held a name others were flagged as colliding with (see the name-key
    /// migration) leaves it to the oldest of them, which is then no longer a collision.
    /// `table` and `name` are fixed identifiers, never input.
    private func handOverName(table: String, name: String, from deletedID: Int64) async throws {
        let heir = try await self.execute(
            """
            UPDATE \(table) SET \(name)_collision = NULL
            WHERE id = (SELECT MIN(id) FROM \(table) WHERE \(name)_collision = ?) RETURNING id
            """,
            [.id(deletedID)])
        guard let heirID = try heir.first?.int64("id") else { return }
        _ = try await self.execute(
            "UPDATE \(table) SET \(name)_collision = ? WHERE \(name)_collision = ?", [.id(heirID), .id(deletedID)])
    }

    func updatePasswordHash(userID: Int64, to hash: String?) async throws {
        try await self.update(
            "UPDATE users SET password_hash = ? WHERE id = ? RETURNING id",
            [.nullableText(hash), .id(userID)],
            notFound: "user \(userID)"
        )
    }

    func setUserActive(userID: Int64, _ active: Bool) async throws {
        try await self.update(
            "UPDATE users SET is_active = ? WHERE id = ? RETURNING id",
            [.bool(active), .id(userID)],
            notFound: "user \(userID)"
        )
    }

    func advanceCredentialVersion(userID: Int64) async throws -> AccountVersions {
        try await self.advanceVersion("credential_version", userID: userID)
    }

    func advanceSessionVersion(userID: Int64) async throws -> AccountVersions {
        try await self.advanceVersion("session_version", userID: userID)
    }

    /// `column` is one of the two version columns, never caller input.
    private func advanceVersion(_ column: String, userID: Int64) async throws -> AccountVersions {
        let rows = try await self.execute(
            "UPDATE users SET \(column) = \(column) + 1 WHERE id = ? RETURNING credential_version, session_version",
            [.id(userID)]
        )
        guard let row = rows.first else { throw StoreError.notFound("user \(userID)") }
        return try Self.versions(from: row)
    }

    // MARK: Organizations

    private static let organizationColumns = "id, name, cluster_name, created_at, access_lifetime, audiences"

    private static func organization(from row: DatabaseRow) throws -> Organization {
        try Organization(
            id: row.int64("id"),
            name: row.string("name"),
            clusterName: row.string("cluster_name"),
            createdAt: row.date("created_at"),
            tokenPolicy: tokenPolicy(from: row)
        )
    }

    static func tokenPolicy(from row: DatabaseRow) throws -> OrganizationTokenPolicy {
        OrganizationTokenPolicy(
            accessLifetime: try row.optionalInt64("access_lifetime").map { Int($0) },
            audiences: try row.optionalString("audiences") == nil ? nil : row.stringList("audiences"))
    }

    func insertOrganization(name: String, clusterName: String, createdAt: Date) async throws -> Organization {
        let forms = AccountName.storedForms(of: name)
        let rows = try await self.execute(
            """
            INSERT INTO organizations (name, cluster_name, created_at, name_key, name_skeleton)
            VALUES (?, ?, ?, ?, ?) RETURNING id
            """,
            [.text(name), .text(clusterName), .date(createdAt), .text(forms.key), .text(forms.skeleton)],
            duplicate: { message in
                message.contains("organizations.cluster_name")
                    ? "organization cluster name \(clusterName)" : "organization \(name)"
            }
        )
        guard let row = rows.first else { throw StoreError.engine("INSERT INTO organizations returned no id") }
        return try Organization(id: row.int64("id"), name: name, clusterName: clusterName, createdAt: createdAt)
    }

    func setTokenPolicy(organizationID: Int64, to policy: OrganizationTokenPolicy) async throws {
        try await self.update(
            "UPDATE organizations SET access_lifetime = ?, audiences = ? WHERE id = ? RETURNING id",
            [
                policy.accessLifetime.map { .integer(SQLiteInt64($0)) } ?? .null,
                try policy.audiences.map { try SQLiteData.stringList($0) } ?? .null, .id(organizationID),
            ],
            notFound: "organization \(organizationID)"
        )
    }

    func deleteOrganization(id: Int64) async throws -> Bool {
        guard try await self.exists("DELETE FROM organizations WHERE id = ? RETURNING id", [.id(id)]) else {
            return false
        }
        try await self.handOverName(table: "organizations", name: "name", from: id)
        return true
    }

    func organizationUsingAudience(_ name: String) async throws -> Organization? {
        try await self.execute(
            """
            SELECT \(Self.organizationColumns) FROM organizations
            WHERE cluster_name = ?1 OR EXISTS (SELECT 1 FROM json_each(organizations.audiences) WHERE value = ?1)
            ORDER BY name LIMIT 1
            """,
            [.text(name)]
        ).first.map(Self.organization(from:))
    }

    // MARK: Audience names

    private static func audienceName(from row: DatabaseRow) throws -> AudienceName {
        let name = try row.string("name")
        let kind = try row.string("kind")
        if kind == "service" { return AudienceName(name: name, holder: .service) }
        guard let use = AudienceName.Use(rawValue: kind) else {
            throw StoreError.engine("unknown kind in column audience_names.kind")
        }
        if let organizationID = try row.optionalInt64("organization_id") {
            return AudienceName(name: name, holder: .organization(id: organizationID, use: use))
        }
        return AudienceName(name: name, holder: .reserved(formerOrganization: try row.string("former_organization")))
    }

    func insertAudienceName(_ name: AudienceName) async throws {
        let binds: [SQLiteData] =
            switch name.holder {
            case .organization(let id, let use): [.text(use.rawValue), .id(id), .null]
            case .reserved(let former): [.text("cluster"), .null, .text(former)]
            case .service: [.text("service"), .null, .null]
            }
        _ = try await self.execute(
            "INSERT INTO audience_names (name, kind, organization_id, former_organization) VALUES (?, ?, ?, ?)",
            [.text(name.name)] + binds,
            duplicate: { _ in "audience name \(name.name)" },
            missingReference: { "organization" }
        )
    }

    func audienceName(_ name: String) async throws -> AudienceName? {
        try await self.execute(
            "SELECT name, kind, organization_id, former_organization FROM audience_names WHERE name = ?", [.text(name)]
        ).first.map(Self.audienceName(from:))
    }

    func audienceNames() async throws -> [AudienceName] {
        try await self.execute(
            "SELECT name, kind, organization_id, former_organization FROM audience_names ORDER BY name"
        ).map(Self.audienceName(from:))
    }

    func updateAudienceNameUse(_ name: String, organizationID: Int64, to use: AudienceName.Use) async throws {
        try await self.update(
            "UPDATE audience_names SET kind = ? WHERE name = ? AND organization_id = ? RETURNING name",
            [.text(use.rawValue), .text(name), .id(organizationID)],
            notFound: "audience name \(name) of organization \(organizationID)"
        )
    }

    func deleteAudienceNames(organizationID: Int64, use: AudienceName.Use, keeping: [String]) async throws {
        _ = try await self.execute(
            """
            DELETE FROM audience_names WHERE organization_id = ? AND kind = ?
                AND name NOT IN (SELECT value FROM json_each(?))
            """,
            [.id(organizationID), .text(use.rawValue), try SQLiteData.stringList(keeping)]
        )
    }

    func reserveAudienceNames(organizationID: Int64, formerOrganization: String) async throws {
        _ = try await self.execute(
            "UPDATE audience_names SET organization_id = NULL, former_organization = ? WHERE organization_id = ?",
            [.text(formerOrganization), .id(organizationID)]
        )
    }

    func deleteReservedAudienceName(_ name: String) async throws -> AudienceName? {
        try await self.execute(
            """
            DELETE FROM audience_names WHERE name = ? AND kind <> 'service' AND organization_id IS NULL
            RETURNING name, kind, organization_id, former_organization
            """,
            [.text(name)]
        ).first.map(Self.audienceName(from:))
    }

    func deleteServiceAudience(_ name: String) async throws -> Bool {
        try await self.exists(
            """
            DELETE FROM audience_names WHERE name = ?1 AND kind = 'service' AND NOT EXISTS (
                SELECT 1 FROM organizations AS o, json_each(o.audiences) AS a WHERE a.value = ?1)
            RETURNING name
            """,
            [.text(name)]
        )
    }

    func organization(named name: String) async throws -> Organization? {
        try await self.execute(
            """
            SELECT \(Self.organizationColumns) FROM organizations WHERE name_key = ?
            ORDER BY name = ? DESC, name_collision IS NOT NULL, id LIMIT 1
            """,
            [.text(AccountName.key(of: name)), .text(name)]
        ).first.map(Self.organization(from:))
    }

    func organization(confusableWith name: String) async throws -> Organization? {
        try await self.execute(
            """
            SELECT \(Self.organizationColumns) FROM organizations WHERE name_skeleton = ?
            ORDER BY name_collision IS NOT NULL, id LIMIT 1
            """,
            [.text(AccountName.storedForms(of: name).skeleton)]
        ).first.map(Self.organization(from:))
    }

    func organization(id: Int64) async throws -> Organization? {
        try await self.execute(
            "SELECT \(Self.organizationColumns) FROM organizations WHERE id = ?", [.id(id)]
        ).first.map(Self.organization(from:))
    }

    func organizations() async throws -> [Organization] {
        try await self.execute(
            "SELECT \(Self.organizationColumns) FROM organizations ORDER BY name"
        ).map(Self.organization(from:))
    }

    // MARK: Memberships

    private static func membership(from row: DatabaseRow) throws -> Membership {
        let roleName = try row.string("role")
        guard let role = Role(rawValue: roleName) else {
            throw StoreError.engine("unknown role in column memberships.role")
        }
        return try Membership(
            organizationID: row.int64("organization_id"),
            userID: row.int64("user_id"),
            role: role,
            isActive: row.bool("is_active"),
            createdAt: row.date("created_at")
        )
    }

    func upsertMembership(_ membership: Membership) async throws {
        _ = try await self.execute(
            """
            INSERT INTO memberships (organization_id, user_id, role, is_active, created_at)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (organization_id, user_id) DO UPDATE SET
                role = excluded.role, is_active = excluded.is_active, created_at = excluded.created_at
            """,
            [
                .id(membership.organizationID), .id(membership.userID), .text(membership.role.rawValue),
                .bool(membership.isActive), .date(membership.createdAt),
            ],
            missingReference: {
                try await self.missingUserOrOrganization(
                    userID: membership.userID, organizationID: membership.organizationID
                )
            }
        )
    }

    func membership(organizationID: Int64, userID: Int64) async throws -> Membership? {
        try await self.execute(
            """
            SELECT organization_id, user_id, role, is_active, created_at FROM memberships
            WHERE organization_id = ? AND user_id = ?
            """,
            [.id(organizationID), .id(userID)]
        ).first.map(Self.membership(from:))
    }

    func members(organizationID: Int64) async throws -> [MemberListing] {
        try await self.execute(
            """
            SELECT u.username, m.organization_id, m.user_id, m.role, m.is_active, m.created_at
            FROM memberships AS m JOIN users AS u ON u.id = m.user_id
            WHERE m.organization_id = ?
            ORDER BY u.username
            """,
            [.id(organizationID)]
        ).map { row in
            try MemberListing(username: row.string("username"), membership: Self.membership(from: row))
        }
    }

    /// One statement for ``Store/accountSnapshot(githubID:login:organizations:)``: a single
    /// SELECT is a consistent snapshot by itself, and one statement is one trip to the
    /// database thread instead of five. The account linked to the id wins over the one linked
    /// to the login.
    static func accountSnapshotQuery(githubID: Int64, login: String, organizations names: [String]) -> (String, [SQLiteData]) {
        let placeholders = Array(repeating: "?", count: names.count).joined(separator: ", ")
        let organizationsPart = names.isEmpty ? "" : """
            UNION ALL
            SELECT 'o', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, o.id, o.name, o.cluster_name,
                   o.created_at, o.access_lifetime, o.audiences, NULL, NULL, NULL
            FROM organizations AS o WHERE o.name IN (\(placeholders))
            """
        let sql = """
            WITH account AS (
                SELECT id FROM users WHERE github_id = ?1 OR github_login = ?2 COLLATE NOCASE
                ORDER BY github_id IS ?1 DESC LIMIT 1
            )
            SELECT 'u' AS kind, u.id, u.username, u.password_hash, u.is_active, u.created_at, u.github_login,
                   u.github_id, u.global_role, u.credential_version, u.session_version,
                   NULL AS organization_id, NULL AS name, NULL AS cluster_name, NULL AS organization_created_at,
                   NULL AS access_lifetime, NULL AS audiences,
                   NULL AS role, NULL AS membership_active, NULL AS membership_created_at
            FROM users AS u WHERE u.id IN account
            UNION ALL
            SELECT 'm', u.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, o.id, o.name, o.cluster_name,
                   o.created_at, o.access_lifetime, o.audiences, m.role, m.is_active, m.created_at
            FROM users AS u JOIN memberships AS m ON m.user_id = u.id JOIN organizations AS o ON o.id = m.organization_id
            WHERE u.id IN account
            \(organizationsPart)
            """
        return (sql, [.id(githubID), .text(login)] + names.map { .text($0) })
    }

    static func accountSnapshot(from rows: [DatabaseRow]) throws -> AccountSnapshot {
        var user: User?
        var memberships: [UserMembership] = []
        var organizations: [Organization] = []
        for row in rows {
            func organization() throws -> Organization {
                try Organization(
                    id: row.int64("organization_id"), name: row.string("name"), clusterName: row.string("cluster_name"),
                    createdAt: row.date("organization_created_at"), tokenPolicy: tokenPolicy(from: row))
            }
            switch try row.string("kind") {
            case "u":
                user = try Self.user(from: row)
            case "m":
                let roleName = try row.string("role")
                guard let role = Role(rawValue: roleName) else {
                    throw StoreError.engine("unknown role in column memberships.role")
                }
                let organization = try organization()
                memberships.append(
                    UserMembership(
                        organization: organization,
                        membership: Membership(
                            organizationID: organization.id, userID: try row.int64("id"), role: role,
                            isActive: try row.bool("membership_active"), createdAt: try row.date("membership_created_at"))))
            default:
                organizations.append(try organization())
            }
        }
        return AccountSnapshot(
            user: user, memberships: memberships.sorted { $0.organization.name < $1.organization.name },
            organizations: organizations.sorted { $0.name < $1.name })
    }

    func organizations(named names: [String]) async throws -> [Organization] {
        guard !names.isEmpty else { return [] }
        let placeholders = Array(repeating: "?", count: names.count).joined(separator: ", ")
        return try await self.execute(
            "SELECT \(Self.organizationColumns) FROM organizations WHERE name IN (\(placeholders)) ORDER BY name",
            names.map { .text($0) }
        ).map(Self.organization(from:))
    }

    func memberships(userID: Int64) async throws -> [UserMembership] {
        try await self.execute(
            """
            SELECT o.id, o.name, o.cluster_name, o.created_at AS organization_created_at,
                   o.access_lifetime, o.audiences, m.organization_id, m.user_id, m.role, m.is_active, m.created_at
            FROM memberships AS m JOIN organizations AS o ON o.id = m.organization_id
            WHERE m.user_id = ?
            ORDER BY o.name
            """,
            [.id(userID)]
        ).map { row in
            try UserMembership(
                organization: Organization(
                    id: row.int64("id"), name: row.string("name"), clusterName: row.string("cluster_name"),
                    createdAt: row.date("organization_created_at"), tokenPolicy: Self.tokenPolicy(from: row)),
                membership: Self.membership(from: row))
        }
    }

    func deleteMembership(organizationID: Int64, userID: Int64) async throws -> Bool {
        try await self.exists(
            "DELETE FROM memberships WHERE organization_id = ? AND user_id = ? RETURNING user_id",
            [.id(organizationID), .id(userID)]
        )
    }

    // MARK: Membership requests

    func insertMembershipRequest(organizationID: Int64, userID: Int64, at date: Date) async throws {
        _ = try await self.execute(
            "INSERT INTO membership_requests (organization_id, user_id, requested_at) VALUES (?, ?, ?)",
            [.id(organizationID), .id(userID), .date(date)],
            duplicate: { _ in "membership request of user \(userID) to organization \(organizationID)" },
            missingReference: {
                try await self.missingUserOrOrganization(userID: userID, organizationID: organizationID)
            }
        )
    }

    private static let membershipRequestQuery = """
        SELECT r.organization_id, r.user_id, u.username, r.requested_at
        FROM membership_requests AS r JOIN users AS u ON u.id = r.user_id
        """

    private static func membershipRequest(from row: DatabaseRow) throws -> MembershipRequest {
        try MembershipRequest(
            organizationID: row.int64("organization_id"), userID: row.int64("user_id"),
            username: row.string("username"), requestedAt: row.date("requested_at"))
    }

    func membershipRequests(organizationID: Int64) async throws -> [MembershipRequest] {
        try await self.execute(
            "\(Self.membershipRequestQuery) WHERE r.organization_id = ? ORDER BY r.requested_at, u.username",
            [.id(organizationID)]
        ).map(Self.membershipRequest(from:))
    }

    func membershipRequest(organizationID: Int64, userID: Int64) async throws -> MembershipRequest? {
        try await self.execute(
            "\(Self.membershipRequestQuery) WHERE r.organization_id = ? AND r.user_id = ?",
            [.id(organizationID), .id(userID)]
        ).first.map(Self.membershipRequest(from:))
    }

    func membershipRequests(userID: Int64) async throws -> [OwnMembershipRequest] {
        try await self.execute(
            """
            SELECT r.organization_id, o.name, o.cluster_name, r.requested_at
            FROM membership_requests AS r JOIN organizations AS o ON o.id = r.organization_id
            WHERE r.user_id = ? ORDER BY r.requested_at, o.name
            """,
            [.id(userID)]
        ).map { row in
            try OwnMembershipRequest(
                organizationID: row.int64("organization_id"), organizationName: row.string("name"),
                clusterName: row.string("cluster_name"), requestedAt: row.date("requested_at"))
        }
    }

    func deleteMembershipRequest(organizationID: Int64, userID: Int64) async throws -> Bool {
        try await self.exists(
            "DELETE FROM membership_requests WHERE organization_id = ? AND user_id = ? RETURNING user_id",
            [.id(organizationID), .id(userID)]
        )
    }

    // MARK: Refresh families

    private static let familyColumns =
        "id, user_id, kind, organization_id, authenticated_at, expires_at, amr, revoked_at, revocation_reason, "
        + "credential_version, session_version, client_ip, user_agent, client_id"

    private static func sessionScope(from row: DatabaseRow) throws -> SessionScope {
        switch (try row.string("kind"), try row.optionalInt64("organization_id")) {
        case ("organization", let organizationID?): .organization(id: organizationID)
        case ("all_clusters", nil): .allClusters
        case ("broker", nil): .broker
        default: throw StoreError.engine("unexpected value in column kind")
        }
    }

    private static func refreshFamily(from row: DatabaseRow) throws -> RefreshFamily {
        try RefreshFamily(
            id: row.string("id"),
            userID: row.int64("user_id"),
            scope: sessionScope(from: row),
            authenticatedAt: row.date("authenticated_at"),
            expiresAt: row.date("expires_at"),
            authenticationMethods: row.stringList("amr"),
            accountVersions: versions(from: row),
            revokedAt: row.optionalDate("revoked_at"),
            revocationReason: row.optionalString("revocation_reason"),
            origin: sessionOrigin(from: row),
            client: row.optionalString("client_id").map(ClientID.init(stored:))
        )
    }

    /// `nil` when neither column holds anything (sessions recorded without an origin).
    private static func sessionOrigin(from row: DatabaseRow) throws -> SessionOrigin? {
        let (clientIP, userAgent) = (try row.optionalString("client_ip"), try row.optionalString("user_agent"))
        if clientIP == nil && userAgent == nil { return nil }
        return SessionOrigin(clientIP: clientIP, userAgent: userAgent)
    }

    func insertRefreshFamily(_ family: RefreshFamily) async throws {
        _ = try await self.execute(
            """
            INSERT INTO refresh_families (\(Self.familyColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(family.id), .id(family.userID), .text(family.scope.kind),
                family.organizationID.map(SQLiteData.id) ?? .null, .date(family.authenticatedAt),
                .date(family.expiresAt), .stringList(family.authenticationMethods), .date(family.revokedAt),
                .nullableText(family.revocationReason), .integer(SQLiteInt64(family.accountVersions.credential.rawValue)),
                .integer(SQLiteInt64(family.accountVersions.session.rawValue)), .nullableText(family.origin?.clientIP),
                .nullableText(family.origin?.userAgent), .nullableText(family.client?.rawValue),
            ],
            duplicate: { _ in "refresh family \(family.id)" },
            missingReference: {
                guard let organizationID = family.organizationID else { return "user \(family.userID)" }
                return try await self.missingUserOrOrganization(userID: family.userID, organizationID: organizationID)
            }
        )
    }

    func refreshFamily(id: String) async throws -> RefreshFamily? {
        try await self.execute(
            """
            SELECT \(Self.familyColumns) FROM refresh_families WHERE id = ?
            """,
            [.text(id)]
        ).first.map(Self.refreshFamily(from:))
    }

    func revokeRefreshFamily(id: String, at date: Date, reason: String) async throws {
        // In an UPDATE every expression sees the row as it was: the first revocation wins.
        try await self.update(
            """
            UPDATE refresh_families SET
                revoked_at = COALESCE(revoked_at, ?),
                revocation_reason = CASE WHEN revoked_at IS NULL THEN ? ELSE revocation_reason END
            WHERE id = ? RETURNING id
            """,
            [.date(date), .text(reason), .text(id)],
            notFound: "refresh family \(id)"
        )
    }

    /// A token hash is a digest, safe to show, but a prefix is enough to tell two apart in a message.
    private static func describeToken(hash: String) -> String {
        "refresh token \(hash.prefix(12))…"
    }

    private static func refreshToken(from row: DatabaseRow) throws -> RefreshTokenRecord {
        try RefreshTokenRecord(
            tokenHash: row.string("token_hash"),
            familyID: row.string("family_id"),
            issuedAt: row.date("issued_at"),
            expiresAt: row.date("expires_at"),
            usedAt: row.optionalDate("used_at")
        )
    }

    func insertRefreshToken(_ token: RefreshTokenRecord) async throws {
        _ = try await self.execute(
            "INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?)",
            [.text(token.tokenHash), .text(token.familyID), .date(token.issuedAt), .date(token.expiresAt), .date(token.usedAt)],
            duplicate: { _ in Self.describeToken(hash: token.tokenHash) },
            missingReference: { "refresh family \(token.familyID)" }
        )
    }

    func refreshToken(hash: String) async throws -> RefreshTokenRecord? {
        try await self.execute(
            "SELECT token_hash, family_id, issued_at, expires_at, used_at FROM refresh_tokens WHERE token_hash = ?",
            [.text(hash)]
        ).first.map(Self.refreshToken(from:))
    }

    /// Statement by statement: they cost no round trip here, and write transactions run one at a
    /// time, so the whole database is this one's until it ends (the token's lock).
    func renewal(ofTokenHash tokenHash: String, counting window: RenewalWindow?) async throws -> RenewalSnapshot? {
        guard let token = try await self.refreshToken(hash: tokenHash),
            let family = try await self.refreshFamily(id: token.familyID)
        else { return nil }
        let user = try await self.user(id: family.userID)
        var organization: Organization?
        var membership: Membership?
        if let organizationID = family.organizationID, let found = try await self.organization(id: organizationID) {
            organization = found
            membership = try await self.membership(organizationID: found.id, userID: family.userID)
        }
        var limitingRenewal: Date?
        if let window {
            limitingRenewal = try await self.execute(
                """
                SELECT used_at FROM refresh_tokens WHERE family_id = ? AND used_at > ?
                ORDER BY used_at DESC LIMIT 1 OFFSET ?
                """,
                [.text(family.id), .date(window.after), .integer(SQLiteInt64(window.limit - 1))]
            ).first.map { try $0.date("used_at") }
        }
        return RenewalSnapshot(
            token: token, family: family, user: user, organization: organization, membership: membership,
            limitingRenewal: limitingRenewal)
    }

    func markRefreshTokenUsed(hash: String, at date: Date) async throws {
        // The first use is kept: the grace window for concurrent refreshes counts from it, and a
        // later call must not extend it.
        try await self.update(
            "UPDATE refresh_tokens SET used_at = COALESCE(used_at, ?) WHERE token_hash = ? RETURNING token_hash",
            [.date(date), .text(hash)],
            notFound: Self.describeToken(hash: hash)
        )
    }

    func refreshFamilies(userID: Int64) async throws -> [RefreshFamily] {
        try await self.execute(
            """
            SELECT \(Self.familyColumns) FROM refresh_families WHERE user_id = ?
            ORDER BY authenticated_at DESC, id
            """,
            [.id(userID)]
        ).map(Self.refreshFamily(from:))
    }

    func revokeRefreshFamilies(userID: Int64, at date: Date, reason: String) async throws -> Int {
        try await self.execute(
            """
            UPDATE refresh_families SET revoked_at = ?1, revocation_reason = ?2
            WHERE user_id = ?3 AND revoked_at IS NULL AND expires_at > ?1 RETURNING id
            """,
            [.date(date), .text(reason), .id(userID)]
        ).count
    }

    // MARK: Portal sessions

    /// A cookie's hash is a digest, safe to show, but a prefix is enough to tell two apart in a message.
    private static func describePortalSession(idHash: String) -> String {
        "portal session \(idHash.prefix(12))…"
    }

    func insertPortalSession(idHash: String, familyID: String, at date: Date) async throws {
        _ = try await self.execute(
            "INSERT INTO portal_sessions (id_hash, family_id, last_seen_at) VALUES (?, ?, ?)",
            [.text(idHash), .text(familyID), .date(date)],
            duplicate: { message in
                message.contains("family_id")
                    ? "portal session of refresh family \(familyID)" : Self.describePortalSession(idHash: idHash)
            },
            missingReference: { "refresh family \(familyID)" }
        )
    }

    /// `columns` (a comma-separated list) of table `alias`, each named `alias_column`, for
    /// ``DatabaseRow/table(_:)``.
    static func aliased(_ columns: String, of alias: String) -> String {
        columns.split(separator: ",").map { column in
            let name = column.trimmingCharacters(in: .whitespaces)
            return "\(alias).\(name) AS \(alias)_\(name)"
        }.joined(separator: ", ")
    }

    /// One statement: the row, its family and the account, consistent without a transaction's help.
    private static let portalSessionQuery = """
        SELECT p.id_hash, p.last_seen_at, \(aliased(familyColumns, of: "f")), \(aliased(userColumns, of: "u"))
        FROM portal_sessions AS p
        JOIN refresh_families AS f ON f.id = p.family_id
        LEFT JOIN users AS u ON u.id = f.user_id
        WHERE p.id_hash = ?
        """

    func portalSession(idHash: String) async throws -> PortalSessionSnapshot? {
        guard let row = try await self.execute(Self.portalSessionQuery, [.text(idHash)]).first else { return nil }
        let user = row.table("u_")
        return try PortalSessionSnapshot(
            idHash: row.string("id_hash"), family: Self.refreshFamily(from: row.table("f_")),
            lastSeenAt: row.date("last_seen_at"), user: user.optionalInt64("id") == nil ? nil : Self.user(from: user))
    }

    func touchPortalSession(idHash: String, at date: Date) async throws {
        try await self.update(
            "UPDATE portal_sessions SET last_seen_at = MAX(last_seen_at, ?) WHERE id_hash = ? RETURNING id_hash",
            [.date(date), .text(idHash)],
            notFound: Self.describePortalSession(idHash: idHash)
        )
    }

    func deletePortalSession(idHash: String) async throws -> Bool {
        try await self.exists("DELETE FROM portal_sessions WHERE id_hash = ? RETURNING id_hash", [.text(idHash)])
    }

    func portalSessionLastSeen(userID: Int64) async throws -> [String: Date] {
        var lastSeen: [String: Date] = [:]
        for row in try await self.execute(
            """
            SELECT p.family_id, p.last_seen_at FROM refresh_families AS f JOIN portal_sessions AS p ON p.family_id = f.id
            WHERE f.user_id = ?
            """,
            [.id(userID)])
        {
            lastSeen[try row.string("family_id")] = try row.date("last_seen_at")
        }
        return lastSeen
    }

    // MARK: Invitations

    private static let invitationColumns =
        "id, code_hash, organization_id, role, created_by, created_at, expires_at, used_at, used_by"

    private static func invitation(from row: DatabaseRow) throws -> Invitation {
        guard let role = Role(rawValue: try row.string("role")) else {
            throw StoreError.engine("unknown role in column portal_invites.role")
        }
        return try Invitation(
            id: row.string("id"), codeHash: row.string("code_hash"), organizationID: row.optionalInt64("organization_id"),
            role: role, createdBy: row.optionalInt64("created_by"), createdAt: row.date("created_at"),
            expiresAt: row.date("expires_at"), usedAt: row.optionalDate("used_at"), usedBy: row.optionalInt64("used_by"))
    }

    /// Names whichever of the rows an invitation refers to does not exist.
    private func missingInvitationReference(_ invitation: Invitation) async throws -> String {
        if let organizationID = invitation.organizationID,
            try await !self.exists("SELECT 1 FROM organizations WHERE id = ?", [.id(organizationID)])
        {
            return "organization \(organizationID)"
        }
        for userID in [invitation.createdBy, invitation.usedBy].compactMap({ $0 }) {
            if try await !self.exists("SELECT 1 FROM users WHERE id = ?", [.id(userID)]) { return "user \(userID)" }
        }
        return "organization or user of invitation \(invitation.id)"
    }

    func insertInvitation(_ invitation: Invitation) async throws {
        _ = try await self.execute(
            "INSERT INTO portal_invites (\(Self.invitationColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .text(invitation.id), .text(invitation.codeHash), invitation.organizationID.map(SQLiteData.id) ?? .null,
                .text(invitation.role.rawValue), invitation.createdBy.map(SQLiteData.id) ?? .null, .date(invitation.createdAt),
                .date(invitation.expiresAt), .date(invitation.usedAt), invitation.usedBy.map(SQLiteData.id) ?? .null,
            ],
            duplicate: { message in message.contains("code_hash") ? "invitation code" : "invitation \(invitation.id)" },
            missingReference: { try await self.missingInvitationReference(invitation) }
        )
    }

    func invitation(codeHash: String) async throws -> Invitation? {
        try await self.execute(
            "SELECT \(Self.invitationColumns) FROM portal_invites WHERE code_hash = ?", [.text(codeHash)]
        ).first.map(Self.invitation(from:))
    }

    func invitation(id: String) async throws -> Invitation? {
        try await self.execute("SELECT \(Self.invitationColumns) FROM portal_invites WHERE id = ?", [.text(id)])
            .first.map(Self.invitation(from:))
    }

    func invitations(organizationID: Int64?) async throws -> [Invitation] {
        let (condition, binds): (String, [SQLiteData]) =
            organizationID.map { ("organization_id = ?", [.id($0)]) } ?? ("organization_id IS NULL", [])
        return try await self.execute(
            "SELECT \(Self.invitationColumns) FROM portal_invites WHERE \(condition) ORDER BY created_at DESC, id", binds
        ).map(Self.invitation(from:))
    }

    func redeemInvitation(id: String, by userID: Int64, at date: Date) async throws -> Bool {
        try await !self.execute(
            """
            UPDATE portal_invites SET used_at = ?1, used_by = ?2
            WHERE id = ?3 AND used_at IS NULL AND expires_at > ?1 RETURNING id
            """,
            [.date(date), .id(userID), .text(id)],
            missingReference: { "user \(userID)" }
        ).isEmpty
    }

    func deleteInvitation(id: String) async throws -> Bool {
        try await self.exists("DELETE FROM portal_invites WHERE id = ? RETURNING id", [.text(id)])
    }

    // MARK: Revoked access tokens

    func insertRevokedAccessToken(jti: String, expiresAt: Date) async throws {
        _ = try await self.execute(
            "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING",
            [.text(jti), .date(expiresAt)]
        )
    }

    func isAccessTokenRevoked(jti: String) async throws -> Bool {
        try await self.exists("SELECT 1 FROM revoked_access_tokens WHERE jti = ?", [.text(jti)])
    }

    func pruneRevokedAccessTokens(before date: Date) async throws {
        _ = try await self.execute("DELETE FROM revoked_access_tokens WHERE expires_at < ?", [.date(date)])
    }

    // MARK: Throttle counters (see ``StoreThrottleCounters``)

    /// SQLite runs one write transaction at a time: nothing to wait for.
    func lockThrottleKeys(_ keys: [ThrottleCounterKey]) async throws {}

    func throttleTimes(_ keys: [ThrottleCounterKey], after cutoff: Date) async throws -> [ThrottleCounterKey: [ThrottleTime]] {
        var times: [ThrottleCounterKey: [ThrottleTime]] = [:]
        for counter in Set(keys.map(\.counter)) {
            let subjects = Set(keys.filter { $0.counter == counter }.map(\.subject) + [ThrottleCounterKey.overflowSubject])
            let placeholders = Array(repeating: "?", count: subjects.count).joined(separator: ", ")
            for row in try await self.execute(
                """
                SELECT subject, counted_at, held_until FROM throttle_times
                WHERE counter = ? AND subject IN (\(placeholders)) AND counted_at > ? ORDER BY counted_at, id
                """,
                [.text(counter.rawValue)] + subjects.map { .text($0) } + [.date(cutoff)])
            {
                times[ThrottleCounterKey(counter: counter, subject: try row.string("subject")), default: []]
                    .append(ThrottleTime(countedAt: try row.date("counted_at"), heldUntil: try row.optionalDate("held_until")))
            }
        }
        return ThrottleCounterKey.counted(keys, from: times)
    }

    @discardableResult
    func recordThrottleTime(
        _ keys: [ThrottleCounterKey], at now: Date, cutoff: Date, maximumKeys: Int?, heldUntil: Date?
    ) async throws -> [Int64] {
        let overflow = ThrottleCounterKey.overflowSubject
        var ids: [Int64] = []
        for key in keys {
            let counter = key.counter.rawValue
            var subject = key.subject
            _ = try await self.execute(
                "DELETE FROM throttle_times WHERE counter = ? AND subject = ? AND counted_at <= ?",
                [.text(counter), .text(subject), .date(cutoff)])
            let hasOwn = try await self.exists(
                "SELECT 1 FROM throttle_times WHERE counter = ? AND subject = ? LIMIT 1", [.text(counter), .text(subject)])
            if !hasOwn && !key.isOverflow {
                // A new key: the counter forgets what left the window (only now, so that keys
                // counting at once do not all delete the same rows), then finds it a place.
                _ = try await self.execute(
                    "DELETE FROM throttle_times WHERE counter = ? AND counted_at <= ?", [.text(counter), .date(cutoff)])
                if let maximumKeys {
                    let tracked = try await self.execute(
                        "SELECT COUNT(DISTINCT subject) AS tracked FROM throttle_times WHERE counter = ? AND subject <> ?",
                        [.text(counter), .text(overflow)]
                    ).first?.int64("tracked") ?? 0
                    if tracked >= Int64(maximumKeys) {
                        subject = overflow
                    } else {
                        // Any of the overflow's failures may have been this key's (a time still
                        // held belongs to its attempt, which settles it where it is).
                        _ = try await self.execute(
                            """
                            INSERT INTO throttle_times (counter, subject, counted_at)
                            SELECT counter, ?, counted_at FROM throttle_times
                            WHERE counter = ? AND subject = ? AND (held_until IS NULL OR held_until <= ?)
                            """,
                            [.text(subject), .text(counter), .text(overflow), .date(now)])
                    }
                }
            }
            let inserted = try await self.execute(
                "INSERT INTO throttle_times (counter, subject, counted_at, held_until) VALUES (?, ?, ?, ?) RETURNING id",
                [.text(counter), .text(subject), .date(now), .date(heldUntil)])
            guard let row = inserted.first else { throw StoreError.engine("throttle_times: INSERT returned no id") }
            ids.append(try row.int64("id"))
        }
        return ids
    }

    func deleteThrottleTimes(ids: [Int64]) async throws {
        for id in ids {
            _ = try await self.execute("DELETE FROM throttle_times WHERE id = ?", [.id(id)])
        }
    }

    func pruneThrottleTimes(counters: [ThrottleCounter], before date: Date, limit: Int) async throws -> Int {
        var deleted = 0
        for counter in counters where deleted < limit {
            deleted += try await self.execute(
                """
                DELETE FROM throttle_times WHERE id IN (
                    SELECT id FROM throttle_times WHERE counter = ? AND counted_at <= ? LIMIT ?
                ) RETURNING id
                """,
                [.text(counter.rawValue), .date(date), .integer(SQLiteInt64(limit - deleted))]
            ).count
        }
        return deleted
    }

    func forgetThrottleKey(_ key: ThrottleCounterKey) async throws {
        _ = try await self.execute(
            "DELETE FROM throttle_times WHERE counter = ? AND subject = ?", [.text(key.counter.rawValue), .text(key.subject)])
    }

    // MARK: Pruning

    /// The statements of ``pruneStorage(_:limit:)``, in order: `?1` is the cutoff, `?2` the
    /// rows still allowed in the batch. Each deletes by rowid from a bounded SELECT (SQLite is
    /// built without DELETE ... LIMIT), finds its rows through an index (never a scan of a whole
    /// table: `StoragePruningTests` reads their query plans) and counts them with RETURNING.
    static let pruneStatements = (
        // A revoked session refuses its refresh tokens before looking at them, so they no longer
        // matter; an expired one refuses them all the same.
        tokensOfEndedSessions: """
            DELETE FROM refresh_tokens WHERE rowid IN (
                SELECT rowid FROM refresh_tokens WHERE family_id IN (
                    SELECT id FROM refresh_families WHERE expires_at < ?1
                    UNION ALL SELECT id FROM refresh_families WHERE revoked_at IS NOT NULL
                ) LIMIT ?2
            ) RETURNING 1
            """,
        expiredUnusedTokens: """
            DELETE FROM refresh_tokens WHERE rowid IN (
                SELECT rowid FROM refresh_tokens WHERE used_at IS NULL AND expires_at < ?1 LIMIT ?2
            ) RETURNING 1
            """,
        // Only sessions without tokens left: the cascade then deletes nothing, and the batch
        // stays within its limit.
        expiredSessions: """
            DELETE FROM refresh_families WHERE rowid IN (
                SELECT f.rowid FROM refresh_families AS f
                WHERE f.expires_at < ?1 AND NOT EXISTS (SELECT 1 FROM refresh_tokens AS t WHERE t.family_id = f.id)
                LIMIT ?2
            ) RETURNING 1
            """,
        expiredRevocations: """
            DELETE FROM revoked_access_tokens WHERE rowid IN (
                SELECT rowid FROM revoked_access_tokens WHERE expires_at < ?1 LIMIT ?2
            ) RETURNING 1
            """,
        // Used or not: a used invitation's row has done its work, and the audit log names its user.
        expiredInvitations: """
            DELETE FROM portal_invites WHERE rowid IN (
                SELECT rowid FROM portal_invites WHERE expires_at < ?1 LIMIT ?2
            ) RETURNING 1
            """
    )

    func pruneStorage(_ cutoffs: PruneCutoffs, limit: Int) async throws -> PrunedRows {
        let statements = Self.pruneStatements
        var removed = PrunedRows()
        var room = limit
        func delete(_ sql: String, _ cutoff: Date) async throws -> Int {
            guard room > 0 else { return 0 }
            let deleted = try await self.execute(sql, [.date(cutoff), .integer(SQLiteInt64(room))]).count
            room -= deleted
            return deleted
        }
        removed.refreshTokens += try await delete(statements.tokensOfEndedSessions, cutoffs.sessionsExpiredBefore)
        removed.refreshTokens += try await delete(statements.expiredUnusedTokens, cutoffs.unusedRefreshTokensExpiredBefore)
        removed.sessions += try await delete(statements.expiredSessions, cutoffs.sessionsExpiredBefore)
        removed.revokedAccessTokens += try await delete(statements.expiredRevocations, cutoffs.revocationsExpiredBefore)
        removed.invitations += try await delete(statements.expiredInvitations, cutoffs.sessionsExpiredBefore)
        return removed
    }

    // MARK: Server secrets

    func serverSecret(named name: String) async throws -> [UInt8]? {
        try await self.execute("SELECT value FROM server_secrets WHERE name = ?", [.text(name)])
            .first.map { try $0.bytes("value") }
    }

    func insertServerSecretIfAbsent(named name: String, value: [UInt8]) async throws -> [UInt8] {
        _ = try await self.execute(
            "INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            [.text(name), .bytes(value)]
        )
        guard let stored = try await self.serverSecret(named: name) else {
            throw StoreError.engine("server secret \(name) vanished after insertion")
        }
        return stored
    }

    func recordSignedLifetime(kid: String, lifetime: Int) async throws {
        _ = try await self.execute(
            """
            INSERT INTO signing_key_lifetimes (kid, longest_lifetime) VALUES (?, ?)
            ON CONFLICT (kid) DO UPDATE SET longest_lifetime = MAX(longest_lifetime, excluded.longest_lifetime)
            """,
            [.text(kid), .integer(SQLiteInt64(max(0, lifetime)))]
        )
    }

    func longestSignedLifetimes(kids: [String]) async throws -> [String: Int] {
        guard !kids.isEmpty else { return [:] }
        let placeholders = Array(repeating: "?", count: kids.count).joined(separator: ", ")
        var longest: [String: Int] = [:]
        for row in try await self.execute(
            "SELECT kid, longest_lifetime FROM signing_key_lifetimes WHERE kid IN (\(placeholders))", kids.map { .text($0) })
        {
            longest[try row.string("kid")] = Int(try row.int64("longest_lifetime"))
        }
        return longest
    }

    func storedKeyRing() async throws -> StoredKeyRing? {
        try await self.execute("SELECT version, document FROM key_ring WHERE id = 1").first.map { row in
            StoredKeyRing(version: Int(try row.int64("version")), document: try row.bytes("document"))
        }
    }

    func replaceStoredKeyRing(_ ring: StoredKeyRing, expectedVersion: Int?) async throws -> Bool {
        guard let expectedVersion else {
            return try await self.exists(
                "INSERT INTO key_ring (id, version, document) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
                [.integer(SQLiteInt64(ring.version)), .bytes(ring.document)])
        }
        return try await self.exists(
            "UPDATE key_ring SET version = ?, document = ? WHERE id = 1 AND version = ? RETURNING id",
            [.integer(SQLiteInt64(ring.version)), .bytes(ring.document), .integer(SQLiteInt64(expectedVersion))])
    }
}
