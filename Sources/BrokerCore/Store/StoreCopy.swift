import Foundation

/// How the values of a copied column are typed, the same on both engines (each engine stores
/// them its own way: a boolean is INTEGER 0/1 in SQLite and BOOLEAN in PostgreSQL, a list of
/// strings a JSON array in SQLite and `TEXT[]` in PostgreSQL).
public enum CopiedColumnKind: Sendable, Equatable {
    case integer, real, text, boolean, blob, stringList
}

public struct CopiedColumn: Sendable, Equatable {
    public var name: String
    public var kind: CopiedColumnKind

    public init(_ name: String, _ kind: CopiedColumnKind) {
        self.name = name
        self.kind = kind
    }
}

/// A table `broker db copy` copies row for row, ids included (memberships, sessions and name
/// collisions refer to them).
public struct CopiedTable: Sendable, Equatable {
    public var name: String
    public var columns: [CopiedColumn]
    /// The column whose values the database generates (users, organizations): after the copy,
    /// PostgreSQL's identity sequence must continue past the copied ids.
    public var identityColumn: String?

    public init(_ name: String, identity: String? = nil, _ columns: [CopiedColumn]) {
        self.name = name
        self.columns = columns
        self.identityColumn = identity
    }
}

/// One value of a copied row, engine-neutral.
public enum CopiedValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case boolean(Bool)
    case blob([UInt8])
    case stringList([String])
}

/// The rows of one table, each in the order of the table's columns.
public struct CopiedRows: Sendable {
    public var table: CopiedTable
    public var rows: [[CopiedValue]]

    public init(table: CopiedTable, rows: [[CopiedValue]]) {
        self.table = table
        self.rows = rows
    }
}

/// What `broker db copy` moves, table by table: every table of the schema is either copied row
/// for row (``tables``) or carried another way (``carriedOtherwise``). A table the schema gains
/// must be added to one of the two (StoreCopySchemaTests compares them with both engines'
/// catalogues), or the copy would silently leave its rows behind.
public enum StoreCopySchema {
    /// Parents before children, so that every reference finds its row.
    public static let tables: [CopiedTable] = [
        CopiedTable(
            "users", identity: "id",
            [
                .init("id", .integer), .init("username", .text), .init("password_hash", .text),
                .init("is_active", .boolean), .init("created_at", .real), .init("github_login", .text),
                .init("global_role", .text), .init("github_id", .integer), .init("credential_version", .integer),
                .init("session_version", .integer), .init("username_key", .text), .init("username_skeleton", .text),
                .init("username_collision", .integer),
            ]),
        CopiedTable(
            "organizations", identity: "id",
            [
                .init("id", .integer), .init("name", .text), .init("cluster_name", .text), .init("created_at", .real),
                .init("access_lifetime", .integer), .init("audiences", .stringList), .init("name_key", .text),
                .init("name_skeleton", .text), .init("name_collision", .integer),
            ]),
        CopiedTable(
            "memberships",
            [
                .init("organization_id", .integer), .init("user_id", .integer), .init("role", .text),
                .init("is_active", .boolean), .init("created_at", .real),
            ]),
        CopiedTable(
            "membership_requests",
            [.init("organization_id", .integer), .init("user_id", .integer), .init("requested_at", .real)]),
        CopiedTable(
            "portal_invites",
            [
                .init("id", .text), .init("code_hash", .text), .init("organization_id", .integer), .init("role", .text),
                .init("created_by", .integer), .init("created_at", .real), .init("expires_at", .real), .init("used_at", .real),
                .init("used_by", .integer),
            ]),
        CopiedTable(
            "audience_names",
            [
                .init("name", .text), .init("kind", .text), .init("organization_id", .integer),
                .init("former_organization", .text),
            ]),
        CopiedTable(
            "refresh_families",
            [
                .init("id", .text), .init("user_id", .integer), .init("kind", .text), .init("organization_id", .integer),
                .init("authenticated_at", .real), .init("expires_at", .real), .init("amr", .stringList),
                .init("revoked_at", .real), .init("revocation_reason", .text), .init("credential_version", .integer),
                .init("session_version", .integer), .init("client_ip", .text), .init("user_agent", .text),
                .init("client_id", .text),
            ]),
        CopiedTable(
            "portal_sessions", [.init("id_hash", .text), .init("family_id", .text), .init("last_seen_at", .real)]),
        CopiedTable(
            "refresh_tokens",
            [
                .init("token_hash", .text), .init("family_id", .text), .init("issued_at", .real),
                .init("expires_at", .real), .init("used_at", .real),
            ]),
        CopiedTable("revoked_access_tokens", [.init("jti", .text), .init("expires_at", .real)]),
        CopiedTable("signing_key_lifetimes", [.init("kid", .text), .init("longest_lifetime", .integer)]),
    ]

    /// Tables of the schema that are not copied row for row, and what happens to what they hold.
    public static let carriedOtherwise: [String: String] = [
        "server_secrets": "sealed into the target's key ring, as a database key ring keeps them",
        "key_ring": "the source's ring (keys_dir, or the database's opened with its KEK) re-sealed under the target's KEK",
        "schema_migrations": "the target's own, written by its migrations",
        "throttle_times": "not carried: throttle counts live one window (at most a day); the replicas start counting afresh",
    ]
}

/// A store `broker db copy` can read (both engines).
public protocol CopySource: Store {
    /// Every table of the database and its columns, as the engine's catalogue lists them.
    func catalogue() async throws -> [String: Set<String>]
    /// The rows of `tables`, the server secrets (`server_secrets`) and the stored key ring, all
    /// read in one consistent snapshot.
    func copySnapshot(of tables: [CopiedTable]) async throws -> StoreCopySnapshot
    /// How many rows each named table holds now.
    func rowCounts(of tables: [String]) async throws -> [String: Int]
}

/// A store `broker db copy` can fill (PostgreSQL).
public protocol CopyTarget: CopySource {
    /// Writes `tables` and `keyRing` in one transaction, ids as they are, and moves identity
    /// sequences past the copied ids.
    /// `identityHighWater` (table → highest id the source ever generated) keeps the ids of
    /// deleted rows from being handed out again.
    /// - Throws: ``StoreCopyRefusal`` (writing nothing) when any table already holds a row or
    ///   the database holds a key ring.
    func fillEmpty(with tables: [CopiedRows], identityHighWater: [String: Int64], keyRing: StoredKeyRing?) async throws
}

public struct StoreCopySnapshot: Sendable {
    public var tables: [CopiedRows]
    /// `server_secrets`: name → value.
    public var serverSecrets: [String: [UInt8]]
    public var keyRing: StoredKeyRing?
    /// Table → the highest id its identity ever generated, deleted rows included: an access
    /// token names its account by id, so a deleted account's id must not come back as another's.
    public var identityHighWater: [String: Int64]

    public init(
        tables: [CopiedRows], serverSecrets: [String: [UInt8]], keyRing: StoredKeyRing?, identityHighWater: [String: Int64]
    ) {
        self.tables = tables
        self.serverSecrets = serverSecrets
        self.keyRing = keyRing
        self.identityHighWater = identityHighWater
    }
}

/// Why `broker db copy` wrote nothing, for the operator.
public struct StoreCopyRefusal: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
