import BrokerCore
import Foundation
import Logging
import SQLiteNIO

/// One step of the schema's history. Applied once, in one transaction, and recorded in
/// `schema_migrations`. A migration, once released, never changes: later changes are new steps.
struct Migration: Sendable {
    var version: Int
    /// Executed in order; one SQL statement each (sqlite-nio prepares only the first statement
    /// of a string).
    var statements: [String]
    /// Runs first, inside the step's transaction: refuses (throws) a database the step cannot
    /// migrate faithfully, with a message saying what to fix.
    var preflight: (@Sendable (DatabaseConnection) async throws -> Void)? = nil
    /// Runs after the statements, inside the step's transaction: fills in what SQL cannot compute.
    var backfill: (@Sendable (DatabaseConnection) async throws -> Void)? = nil
}

/// The schema of the broker's SQLite database, oldest step first.
///
/// Conventions: `STRICT` tables; dates are REAL seconds since 1970 (UTC); booleans are INTEGER 0/1;
/// text compares with SQLite's default BINARY collation (case-sensitive); every child column of a
/// foreign key is indexed so that cascading deletes do not scan.
enum Schema {
    static let migrations: [Migration] = [
        Migration(version: 1, statements: [
            """
            CREATE TABLE users (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                username TEXT NOT NULL UNIQUE,
                password_hash TEXT,
                is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),
                created_at REAL NOT NULL
            ) STRICT
            """,
            """
            CREATE TABLE organizations (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL UNIQUE,
                cluster_name TEXT NOT NULL UNIQUE,
                created_at REAL NOT NULL
            ) STRICT
            """,
            """
            CREATE TABLE memberships (
                organization_id INTEGER NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
                user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                role TEXT NOT NULL CHECK (role IN ('member', 'owner', 'admin')),
                is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),
                created_at REAL NOT NULL,
                PRIMARY KEY (organization_id, user_id)
            ) STRICT
            """,
            "CREATE INDEX memberships_user_id ON memberships (user_id)",
            """
            CREATE TABLE refresh_families (
                id TEXT NOT NULL PRIMARY KEY,
                user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                organization_id INTEGER NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
                authenticated_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                amr TEXT NOT NULL CHECK (json_valid(amr) AND json_type(amr) = 'array'),
                revoked_at REAL,
                revocation_reason TEXT
            ) STRICT
            """,
            "CREATE INDEX refresh_families_user_id ON refresh_families (user_id)",
            "CREATE INDEX refresh_families_organization_id ON refresh_families (organization_id)",
            """
            CREATE TABLE refresh_tokens (
                token_hash TEXT NOT NULL PRIMARY KEY,
                family_id TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
                issued_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                used_at REAL
            ) STRICT
            """,
            "CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id)",
            """
            CREATE TABLE server_secrets (
                name TEXT NOT NULL PRIMARY KEY,
                value BLOB NOT NULL
            ) STRICT
            """,
        ]),
        // GitHub identities: a local account may be linked to one GitHub login (case-insensitive,
        // as GitHub compares logins).
        Migration(version: 2, statements: [
            "ALTER TABLE users ADD COLUMN github_login TEXT",
            "CREATE UNIQUE INDEX users_github_login ON users (github_login COLLATE NOCASE)",
        ]),
        // Administration: global roles, per-organization token policy, membership requests, and
        // access tokens revoked before their expiry (for introspection).
        Migration(version: 3, statements: [
            "ALTER TABLE users ADD COLUMN global_role TEXT CHECK (global_role IN ('admin', 'introspector'))",
            "ALTER TABLE organizations ADD COLUMN access_lifetime INTEGER CHECK (access_lifetime > 0)",
            """
            ALTER TABLE organizations ADD COLUMN audiences TEXT
                CHECK (audiences IS NULL OR (json_valid(audiences) AND json_type(audiences) = 'array'))
            """,
            """
            CREATE TABLE membership_requests (
                organization_id INTEGER NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
                user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                requested_at REAL NOT NULL,
                PRIMARY KEY (organization_id, user_id)
            ) STRICT
            """,
            "CREATE INDEX membership_requests_user_id ON membership_requests (user_id)",
            """
            CREATE TABLE revoked_access_tokens (
                jti TEXT NOT NULL PRIMARY KEY,
                expires_at REAL NOT NULL
            ) STRICT
            """,
            "CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at)",
        ]),
        // Sessions of every kind: a generation-2 login and a broker session sign-in are recorded as
        // families without an organization, so that revocation ("sign out everywhere", password
        // reset) reaches their tokens through `sid`. SQLite cannot relax NOT NULL in place: both
        // tables are rebuilt. With foreign keys on, dropping refresh_families would cascade into
        // refresh_tokens, so the tokens move to their new table first; renaming the new families
        // table rewrites the tokens' reference to it.
        Migration(version: 4, statements: [
            """
            CREATE TABLE refresh_families_v4 (
                id TEXT NOT NULL PRIMARY KEY,
                user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                kind TEXT NOT NULL CHECK (kind IN ('organization', 'all_clusters', 'broker')),
                organization_id INTEGER REFERENCES organizations (id) ON DELETE CASCADE,
                authenticated_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                amr TEXT NOT NULL CHECK (json_valid(amr) AND json_type(amr) = 'array'),
                revoked_at REAL,
                revocation_reason TEXT,
                CHECK ((kind = 'organization') = (organization_id IS NOT NULL))
            ) STRICT
            """,
            """
            INSERT INTO refresh_families_v4
                (id, user_id, kind, organization_id, authenticated_at, expires_at, amr, revoked_at, revocation_reason)
            SELECT id, user_id, 'organization', organization_id, authenticated_at, expires_at, amr, revoked_at,
                revocation_reason
            FROM refresh_families
            """,
            """
            CREATE TABLE refresh_tokens_v4 (
                token_hash TEXT NOT NULL PRIMARY KEY,
                family_id TEXT NOT NULL REFERENCES refresh_families_v4 (id) ON DELETE CASCADE,
                issued_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                used_at REAL
            ) STRICT
            """,
            """
            INSERT INTO refresh_tokens_v4 (token_hash, family_id, issued_at, expires_at, used_at)
            SELECT token_hash, family_id, issued_at, expires_at, used_at FROM refresh_tokens
            """,
            "DROP TABLE refresh_tokens",
            "DROP TABLE refresh_families",
            "ALTER TABLE refresh_families_v4 RENAME TO refresh_families",
            "ALTER TABLE refresh_tokens_v4 RENAME TO refresh_tokens",
            "CREATE INDEX refresh_families_user_id ON refresh_families (user_id)",
            "CREATE INDEX refresh_families_organization_id ON refresh_families (organization_id)",
            "CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id)",
        ]),
        // Audience names: every name a token may carry in `aud` has one holder — an organization
        // (its cluster, a policy audience, a configured team cluster), a reservation left by a
        // deleted organization, or a service audience open to every organization. The primary
        // key decides between racing claims; an organization holding names cannot be deleted
        // (no ON DELETE action) until they are turned into reservations.
        Migration(
            version: 5,
            statements: [
                """
                CREATE TABLE audience_names (
                    name TEXT NOT NULL PRIMARY KEY,
                    kind TEXT NOT NULL CHECK (kind IN ('cluster', 'audience', 'team_cluster', 'service')),
                    organization_id INTEGER REFERENCES organizations (id),
                    former_organization TEXT,
                    CHECK (CASE WHEN kind = 'service' THEN organization_id IS NULL AND former_organization IS NULL
                                ELSE (organization_id IS NULL) <> (former_organization IS NULL) END)
                ) STRICT
                """,
                "CREATE INDEX audience_names_organization_id ON audience_names (organization_id)",
                "INSERT INTO audience_names (name, kind, organization_id) SELECT cluster_name, 'cluster', id FROM organizations",
                """
                INSERT INTO audience_names (name, kind, organization_id)
                SELECT DISTINCT a.value, 'audience', o.id FROM organizations AS o, json_each(o.audiences) AS a
                WHERE a.value <> o.cluster_name
                """,
            ],
            preflight: AudienceNamesBackfill.refuseSharedNames),
        // GitHub identities by user id: logins get renamed and re-registered, GitHub's numeric id
        // does not change hands. Rows linked by login only keep a NULL id until their next
        // verified GitHub login records it.
        Migration(version: 6, statements: [
            "ALTER TABLE users ADD COLUMN github_id INTEGER CHECK (github_id > 0)",
            "CREATE UNIQUE INDEX users_github_id ON users (github_id)",
        ]),
        // Credential and session versions: a login reads the account's versions with its password
        // hash, a session records them, and the session is good only while the account still has
        // them. A password reset advances both; sign out everywhere and disabling the account
        // advance the session version. Existing sessions carry version 1, the accounts' version,
        // and go on, except those of disabled accounts: re-enabling must not revive them.
        Migration(version: 7, statements: [
            "ALTER TABLE users ADD COLUMN credential_version INTEGER NOT NULL DEFAULT 1 CHECK (credential_version > 0)",
            "ALTER TABLE users ADD COLUMN session_version INTEGER NOT NULL DEFAULT 1 CHECK (session_version > 0)",
            "UPDATE users SET session_version = 2 WHERE is_active = 0",
            """
            ALTER TABLE refresh_families ADD COLUMN credential_version INTEGER NOT NULL DEFAULT 1
                CHECK (credential_version > 0)
            """,
            """
            ALTER TABLE refresh_families ADD COLUMN session_version INTEGER NOT NULL DEFAULT 1
                CHECK (session_version > 0)
            """,
        ]),
        // Storage pruning (StoragePruner): find expired and revoked sessions and expired unused
        // refresh tokens without scanning every token. The partial indexes hold only what they
        // look for: revoked sessions, and the one unused token of each session.
        Migration(version: 8, statements: [
            "CREATE INDEX refresh_families_expires_at ON refresh_families (expires_at)",
            "CREATE INDEX refresh_families_revoked ON refresh_families (revoked_at) WHERE revoked_at IS NOT NULL",
            "CREATE INDEX refresh_tokens_unused_expires_at ON refresh_tokens (expires_at) WHERE used_at IS NULL",
        ]),
        // Names as a person reads them (``AccountName``): each user and organization keeps its
        // comparison key (lookups) and its TS #39 skeleton (unique: no two names look alike).
        // Older rows may collide; they are not merged: the newer of each pair records the id of
        // the older one it reads like, keeps working, stays out of the unique index and is
        // reported until an operator resolves it (docs/operations.md).
        Migration(
            version: 9,
            statements: [
                "ALTER TABLE users ADD COLUMN username_key TEXT",
                "ALTER TABLE users ADD COLUMN username_skeleton TEXT",
                "ALTER TABLE users ADD COLUMN username_collision INTEGER",
                "ALTER TABLE organizations ADD COLUMN name_key TEXT",
                "ALTER TABLE organizations ADD COLUMN name_skeleton TEXT",
                "ALTER TABLE organizations ADD COLUMN name_collision INTEGER",
            ],
            backfill: NameKeysBackfill.run),
        // The longest lifetime of a token each signing key signed (KeyLifecyclePolicy): recorded
        // before the key signs it, read when a retired key may leave the JWKS.
        Migration(version: 10, statements: [
            """
            CREATE TABLE signing_key_lifetimes (
                kid TEXT PRIMARY KEY,
                longest_lifetime INTEGER NOT NULL CHECK (longest_lifetime >= 0)
            ) STRICT
            """,
        ]),
        // The signing key ring when it lives in the database (replicas share nothing else):
        // one row, its version the compare-and-swap of every change (DatabaseKeyRing). The
        // document seals every private key; SQLite installations keep the ring in keys_dir.
        Migration(version: 11, statements: [
            """
            CREATE TABLE key_ring (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                version INTEGER NOT NULL CHECK (version > 0),
                document BLOB NOT NULL
            ) STRICT
            """,
        ]),
        // The throttle counters (StoreThrottleCounters): one row per counted attempt, its key a
        // digest. Only replicas on PostgreSQL count here; the same step keeps both engines alike.
        Migration(version: 12, statements: [
            """
            CREATE TABLE throttle_times (
                id INTEGER PRIMARY KEY,
                counter TEXT NOT NULL,
                subject TEXT NOT NULL,
                counted_at REAL NOT NULL
            ) STRICT
            """,
            "CREATE INDEX throttle_times_subject ON throttle_times (counter, subject, counted_at)",
            "CREATE INDEX throttle_times_counted_at ON throttle_times (counter, counted_at)",
            // A session's renewals in the renewal throttle's window (counted by the renewal's
            // read, RenewalWindow), read without scanning every token of a long session.
            "CREATE INDEX refresh_tokens_family_used_at ON refresh_tokens (family_id, used_at)",
        ]),
        // A login attempt in flight holds its place in the counters until it settles
        // (ThrottleTime.heldUntil), so that replicas admitting at once stay within the limit.
        Migration(version: 13, statements: [
            "ALTER TABLE throttle_times ADD COLUMN held_until REAL",
        ]),
        // The portal (issue 14). A session's origin (SessionOrigin), shown to its holder beside
        // it: nullable columns without a default, so the ALTERs rewrite no row. A browser's
        // session is a `.broker` family with a portal_sessions row rather than a new kind: the
        // kind's CHECK cannot change without rebuilding refresh_families and refresh_tokens (as
        // version 4 did), and every path that ends a family (revocation, pruning, deleting the
        // account) then ends the browser's session too, the row following by cascade. The row
        // holds the cookie's SHA-256, never the cookie; family_id is UNIQUE (its index serves
        // the cascade).
        Migration(version: 14, statements: [
            "ALTER TABLE refresh_families ADD COLUMN client_ip TEXT",
            "ALTER TABLE refresh_families ADD COLUMN user_agent TEXT",
            """
            CREATE TABLE portal_sessions (
                id_hash TEXT NOT NULL PRIMARY KEY,
                family_id TEXT NOT NULL UNIQUE REFERENCES refresh_families (id) ON DELETE CASCADE,
                last_seen_at REAL NOT NULL
            ) STRICT
            """,
        ]),
        // Invitations to the portal's sign-up (issue 14). The code is never stored, only its
        // SHA-256 (UNIQUE: the lookup at sign-up). An organization's invitation goes with the
        // organization; an account-only one (organization_id NULL) is a global admin's. Creator
        // and user are kept for the lists but do not keep an account alive (SET NULL). Every
        // foreign key's column is indexed, as elsewhere, and expires_at for the pruner.
        Migration(version: 15, statements: [
            """
            CREATE TABLE portal_invites (
                id TEXT NOT NULL PRIMARY KEY,
                code_hash TEXT NOT NULL UNIQUE,
                organization_id INTEGER REFERENCES organizations (id) ON DELETE CASCADE,
                role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'owner', 'admin')),
                created_by INTEGER REFERENCES users (id) ON DELETE SET NULL,
                created_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                used_at REAL,
                used_by INTEGER REFERENCES users (id) ON DELETE SET NULL
            ) STRICT
            """,
            "CREATE INDEX portal_invites_organization_id ON portal_invites (organization_id)",
            "CREATE INDEX portal_invites_created_by ON portal_invites (created_by)",
            "CREATE INDEX portal_invites_used_by ON portal_invites (used_by)",
            "CREATE INDEX portal_invites_expires_at ON portal_invites (expires_at)",
        ]),
        // The OAuth client of a session (issue 15: RFC 9068's `client_id`), so that its refresh
        // tokens renew only for that client. Nullable without a default: the ALTER rewrites no
        // row, and an older session's client follows from its kind (RefreshFamily.client(slideRule:)).
        Migration(version: 16, statements: [
            "ALTER TABLE refresh_families ADD COLUMN client_id TEXT",
        ]),
    ]
}

/// The backfill of the name keys and skeletons of existing users and organizations.
enum NameKeysBackfill {
    @Sendable static func run(_ connection: DatabaseConnection) async throws {
        try await fill(connection, table: "users", name: "username")
        try await fill(connection, table: "organizations", name: "name")
    }

    /// `table` and `name` are fixed identifiers, never input.
    private static func fill(_ connection: DatabaseConnection, table: String, name: String) async throws {
        var holders: [String: Int64] = [:]
        for row in try await connection.rows("SELECT id, \(name) AS name FROM \(table) ORDER BY id") {
            let id = try row.int64("id")
            let forms = AccountName.storedForms(of: try row.string("name"))
            let collision = holders[forms.skeleton]
            if collision == nil { holders[forms.skeleton] = id }
            _ = try await connection.rows(
                "UPDATE \(table) SET \(name)_key = ?, \(name)_skeleton = ?, \(name)_collision = ? WHERE id = ?",
                [.text(forms.key), .text(forms.skeleton), collision.map(SQLiteData.id) ?? .null, .id(id)])
        }
        _ = try await connection.rows("CREATE INDEX \(table)_\(name)_key ON \(table) (\(name)_key)")
        _ = try await connection.rows(
            "CREATE UNIQUE INDEX \(table)_\(name)_skeleton ON \(table) (\(name)_skeleton) WHERE \(name)_collision IS NULL")
    }
}

/// The backfill of `audience_names` from existing organizations and policies.
enum AudienceNamesBackfill {
    /// Older brokers let two organizations end up with one name (a race, or a policy written
    /// before the check existed). Which of them keeps it is the operator's decision, not the
    /// migration's: it stops and names every shared name with its organizations.
    @Sendable static func refuseSharedNames(_ connection: DatabaseConnection) async throws {
        let rows = try await connection.rows(
            """
            WITH claims (name, organization) AS (
                SELECT cluster_name, name FROM organizations
                UNION
                SELECT a.value, o.name FROM organizations AS o, json_each(o.audiences) AS a
            )
            SELECT name, group_concat(organization, ', ') AS organizations
            FROM (SELECT name, organization FROM claims ORDER BY name, organization)
            GROUP BY name HAVING COUNT(*) > 1 ORDER BY name
            """)
        guard !rows.isEmpty else { return }
        let shared = try rows.map { "\(try $0.string("name")) (\(try $0.string("organizations")))" }
        throw StoreError.engine(
            "cannot upgrade the database: these audience names belong to more than one organization: "
                + shared.joined(separator: "; ")
                + ". Leave each name to one organization (with the previous broker version: "
                + "`broker orgs policy ORG --audience ...` or `--reset`), then start this version again")
    }
}

/// Brings a database up to the latest schema version, one migration per transaction.
///
/// Several processes may open the same file at once (the server and a CLI): each step re-reads the
/// current version after `BEGIN IMMEDIATE` has taken the write lock, so a step is applied once.
struct Migrator {
    var migrations: [Migration]
    var logger: Logger

    init(migrations: [Migration], logger: Logger) {
        precondition(
            zip(migrations, migrations.dropFirst()).allSatisfy { $0.version < $1.version }
                && (migrations.first?.version ?? 1) > 0,
            "migrations must have positive, strictly increasing versions"
        )
        self.migrations = migrations
        self.logger = logger
    }

    var latestVersion: Int { self.migrations.last?.version ?? 0 }

    func migrate(_ connection: DatabaseConnection) async throws {
        while try await self.applyNextStep(connection) {}
    }

    /// Applies the first pending migration; returns false when there was none.
    private func applyNextStep(_ connection: DatabaseConnection) async throws -> Bool {
        _ = try await connection.rows("BEGIN IMMEDIATE")
        do {
            _ = try await connection.rows("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY,
                    applied_at REAL NOT NULL
                ) STRICT
                """)
            let current = try await connection.rows(
                "SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations"
            ).first?.int64("version") ?? 0

            guard current <= self.latestVersion else {
                throw StoreError.engine(
                    "the database schema is at version \(current), newer than the latest this broker "
                        + "knows (\(self.latestVersion)); upgrade the broker"
                )
            }
            guard let next = self.migrations.first(where: { $0.version > current }) else {
                _ = try await connection.rows("COMMIT")
                return false
            }
            try await next.preflight?(connection)
            for statement in next.statements {
                _ = try await connection.rows(statement)
            }
            try await next.backfill?(connection)
            _ = try await connection.rows(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                [.integer(SQLiteInt64(next.version)), .date(Date())]
            )
            _ = try await connection.rows("COMMIT")
            self.logger.info("applied schema migration", metadata: ["version": "\(next.version)"])
            return true
        } catch {
            do {
                _ = try await connection.rows("ROLLBACK")
            } catch {
                self.logger.error("rollback of a schema migration failed", metadata: [
                    "error": "\(SQLiteErrors.storeError(error))",
                ])
            }
            throw error
        }
    }
}
