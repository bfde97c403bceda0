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
        // GitHub identities by user id: logins get renamed and re-registered, GitHub's numeric id
        // does not change hands. Rows linked by login only keep a NULL id until their next
        // verified GitHub login records it.
        Migration(version: 4, statements: [
            "ALTER TABLE users ADD COLUMN github_id INTEGER CHECK (github_id > 0)",
            "CREATE UNIQUE INDEX users_github_id ON users (github_id)",
        ]),
    ]
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

    func migrate(_ connection: SQLiteConnection) async throws {
        while try await self.applyNextStep(connection) {}
    }

    /// Applies the first pending migration; returns false when there was none.
    private func applyNextStep(_ connection: SQLiteConnection) async throws -> Bool {
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
            for statement in next.statements {
                _ = try await connection.rows(statement)
            }
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
