import BrokerCore
import Foundation
import PostgresNIO

/// A statement of a hot path, prepared once per connection under its ``name`` and run again with
/// new values (``PostgresTransaction``'s `execute(prepared:)`): a refresh grant runs these, and
/// PostgreSQL spent more on planning them than on anything else. Rows are handed back undecoded,
/// for the transaction's decoders.
///
/// Behind PgBouncer in transaction mode, named prepared statements need PgBouncer 1.21 or later
/// with `max_prepared_statements` above 0 (docs/deployment.md).
protocol HotPathStatement: PostgresPreparedStatement where Row == PostgresRow {}

extension HotPathStatement {
    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// ``StoreTransaction/renewal(ofTokenHash:counting:)`` without a window: the token, locked, with
/// its family, account, organization and membership.
struct RenewalSnapshotStatement: HotPathStatement {
    static let name = "broker_renewal_snapshot"
    static let sql = renewalSQL(counting: false)

    var tokenHash: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(self.tokenHash)
        return bindings
    }

    /// With `counting`, a last column `limiting_renewal`: the first use of the session's `$3 + 1`-th
    /// most recent renewal after `$2` (an index scan of `refresh_tokens_family_used_at` from its
    /// newest end, at most `$3 + 1` entries), NULL while there were fewer.
    static func renewalSQL(counting: Bool) -> String {
        let limitingRenewal = """
            ,
                (SELECT r.used_at FROM refresh_tokens AS r WHERE r.family_id = t.family_id AND r.used_at > $2
                 ORDER BY r.used_at DESC OFFSET $3 LIMIT 1) AS limiting_renewal
            """
        return """
            SELECT \(PostgresTransaction.aliased(PostgresTransaction.tokenColumns, of: "t")),
                \(PostgresTransaction.aliased(PostgresTransaction.familyColumns, of: "f")),
                \(PostgresTransaction.aliased(PostgresTransaction.userColumns, of: "u")),
                \(PostgresTransaction.aliased(PostgresTransaction.organizationColumns, of: "o")),
                \(PostgresTransaction.aliased(PostgresTransaction.membershipColumns, of: "m"))\(counting ? limitingRenewal : "")
            FROM refresh_tokens AS t
            JOIN refresh_families AS f ON f.id = t.family_id
            LEFT JOIN users AS u ON u.id = f.user_id
            LEFT JOIN organizations AS o ON o.id = f.organization_id
            LEFT JOIN memberships AS m ON m.organization_id = f.organization_id AND m.user_id = f.user_id
            WHERE t.token_hash = $1
            FOR NO KEY UPDATE OF t
            """
    }
}

/// ``StoreTransaction/renewal(ofTokenHash:counting:)`` with a window: as
/// ``RenewalSnapshotStatement``, with the session's renewals counted in the same statement (a
/// round trip less than a statement of their own).
struct CountingRenewalSnapshotStatement: HotPathStatement {
    static let name = "broker_counting_renewal_snapshot"
    static let sql = RenewalSnapshotStatement.renewalSQL(counting: true)

    var tokenHash: String
    var window: RenewalWindow

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(self.tokenHash)
        bindings.append(self.window.after.timeIntervalSince1970)
        bindings.append(Int64(self.window.limit - 1))
        return bindings
    }
}

/// ``StoreTransaction/insertRefreshToken(_:)``.
struct InsertRefreshTokenStatement: HotPathStatement {
    static let name = "broker_insert_refresh_token"
    static let sql = """
        INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5)
        """

    var token: RefreshTokenRecord

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 5)
        bindings.append(refreshToken: self.token)
        return bindings
    }
}

/// ``StoreTransaction/markRefreshTokenUsed(hash:at:insertingSuccessor:)``: both writes of a
/// renewal in one statement. The successor is inserted only if the used token exists; returns its
/// hash then.
struct RenewRefreshTokenStatement: HotPathStatement {
    static let name = "broker_renew_refresh_token"
    static let sql = """
        WITH used AS (
            UPDATE refresh_tokens SET used_at = COALESCE(used_at, $2) WHERE token_hash = $1 RETURNING token_hash
        )
        INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at, used_at)
        SELECT $3, $4, $5, $6, $7 FROM used
        RETURNING token_hash
        """

    var usedHash: String
    var usedAt: Double
    var successor: RefreshTokenRecord

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 7)
        bindings.append(self.usedHash)
        bindings.append(self.usedAt)
        bindings.append(refreshToken: self.successor)
        return bindings
    }
}

extension PostgresBindings {
    /// A refresh token's five columns, in ``PostgresTransaction/tokenColumns``' order.
    mutating func append(refreshToken token: RefreshTokenRecord) {
        self.append(token.tokenHash)
        self.append(token.familyID)
        self.append(token.issuedAt.timeIntervalSince1970)
        self.append(token.expiresAt.timeIntervalSince1970)
        self.append(token.usedAt?.timeIntervalSince1970)
    }
}

/// How a transaction begins. Every transaction sends one, and COMMIT (``CommitStatement``):
/// prepared by name like the hot path's statements, they cost PostgreSQL no parsing and
/// postgres-nio no description of their (absent) rows after the first time on a connection.
enum TransactionStart: Sendable {
    case serializable
    /// ``Store/lockingTransaction(_:)``'s.
    case readCommitted
    /// ``Store/read(_:)``'s.
    case readOnlySnapshot
}

/// A statement without parameters or rows that controls the transaction.
protocol TransactionControlStatement: HotPathStatement {}

extension TransactionControlStatement {
    func makeBindings() throws -> PostgresBindings { PostgresBindings() }
}

struct BeginSerializableStatement: TransactionControlStatement {
    static let name = "broker_begin_serializable"
    static let sql = "BEGIN ISOLATION LEVEL SERIALIZABLE"
}

struct BeginReadCommittedStatement: TransactionControlStatement {
    static let name = "broker_begin_read_committed"
    static let sql = "BEGIN ISOLATION LEVEL READ COMMITTED"
}

struct BeginReadOnlySnapshotStatement: TransactionControlStatement {
    static let name = "broker_begin_read_only_snapshot"
    static let sql = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
}

struct CommitStatement: TransactionControlStatement {
    static let name = "broker_commit"
    static let sql = "COMMIT"
}
