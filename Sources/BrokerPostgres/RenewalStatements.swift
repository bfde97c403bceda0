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

/// ``StoreTransaction/renewal(ofTokenHash:)``: the token, locked, with its family, account,
/// organization and membership.
struct RenewalSnapshotStatement: HotPathStatement {
    static let name = "broker_renewal_snapshot"
    static let sql = """
        SELECT \(PostgresTransaction.aliased(PostgresTransaction.tokenColumns, of: "t")),
            \(PostgresTransaction.aliased(PostgresTransaction.familyColumns, of: "f")),
            \(PostgresTransaction.aliased(PostgresTransaction.userColumns, of: "u")),
            \(PostgresTransaction.aliased(PostgresTransaction.organizationColumns, of: "o")),
            \(PostgresTransaction.aliased(PostgresTransaction.membershipColumns, of: "m"))
        FROM refresh_tokens AS t
        JOIN refresh_families AS f ON f.id = t.family_id
        LEFT JOIN users AS u ON u.id = f.user_id
        LEFT JOIN organizations AS o ON o.id = f.organization_id
        LEFT JOIN memberships AS m ON m.organization_id = f.organization_id AND m.user_id = f.user_id
        WHERE t.token_hash = $1
        FOR NO KEY UPDATE OF t
        """

    var tokenHash: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(self.tokenHash)
        return bindings
    }
}

/// ``StoreTransaction/renewalTimes(ofSessionHolding:after:)``.
struct RenewalTimesStatement: HotPathStatement {
    static let name = "broker_renewal_times"
    static let sql = """
        SELECT renewal.used_at AS used_at FROM refresh_tokens AS presented
        JOIN refresh_tokens AS renewal ON renewal.family_id = presented.family_id
        WHERE presented.token_hash = $1 AND renewal.used_at > $2
        ORDER BY renewal.used_at
        """

    var tokenHash: String
    var after: Double

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(self.tokenHash)
        bindings.append(self.after)
        return bindings
    }
}

/// ``StoreTransaction/markRefreshTokenUsed(hash:at:)``: the first use is kept, since the grace
/// window for concurrent refreshes counts from it. Returns the token's hash if it exists.
struct MarkRefreshTokenUsedStatement: HotPathStatement {
    static let name = "broker_mark_refresh_token_used"
    static let sql = """
        UPDATE refresh_tokens SET used_at = COALESCE(used_at, $2) WHERE token_hash = $1 RETURNING token_hash
        """

    var tokenHash: String
    var usedAt: Double

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(self.tokenHash)
        bindings.append(self.usedAt)
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
        bindings.append(self.token.tokenHash)
        bindings.append(self.token.familyID)
        bindings.append(self.token.issuedAt.timeIntervalSince1970)
        bindings.append(self.token.expiresAt.timeIntervalSince1970)
        bindings.append(self.token.usedAt?.timeIntervalSince1970)
        return bindings
    }
}
