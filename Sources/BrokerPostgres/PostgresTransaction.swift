import BrokerCore
import BrokerSync
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// The ``StoreTransaction`` that ``PostgresStore`` hands to a transaction's body: the same
/// semantics as SQLite's, statement for statement (see `SQLiteTransaction`).
///
/// Once the transaction has ended every method throws `StoreError.engine("transaction is
/// closed")`. A statement that may fail on a constraint the caller expects (a duplicate, a missing
/// reference) runs inside a savepoint, so that its failure is undone alone, as in SQLite; any other
/// failure leaves the transaction aborted, and it cannot commit.
final class PostgresTransaction: StoreTransaction {
    private struct State {
        var isOpen = true
        /// PostgreSQL aborted the transaction for a conflict: it must run again.
        var conflict: SerializationConflict?
        /// A statement failed outside a savepoint: the transaction can only roll back.
        var failure: (any Error)?
        /// The connection died under a statement of the body (before COMMIT was sent): nothing
        /// of this transaction can have committed, so it may run again on another connection.
        var connectionLost = false
    }

    private let connection: PostgresConnection
    private let logger: Logger
    private let clientDeadline: TimeAmount
    /// Where the statements' own tasks run: the transaction's preferred executor, if any.
    private let executor: (any TaskExecutor)?
    private let state = Locked(State())

    init(connection: PostgresConnection, store: PostgresStore, executor: (any TaskExecutor)? = nil) {
        self.connection = connection
        self.executor = executor
        self.logger = store.logger
        // The server ends a statement at statement_timeout; if it does not answer at all (a
        // network partition), the client gives up a little later by closing the connection.
        self.clientDeadline = .milliseconds(Int64(PostgresStore.milliseconds(store.settings.statementTimeout)) + 2_000)
    }

    var conflict: SerializationConflict? { self.state.withLock { $0.conflict } }

    // MARK: Transaction control (the store's)

    /// - Throws: ``StaleConnection`` when the connection turns out dead (the server restarted or
    ///   cut it while it sat in the pool): nothing was sent, the store may try another.
    func begin(_ start: TransactionStart) async throws {
        guard !self.connection.isClosed else {
            throw StaleConnection(error: StoreError.unavailable("database connection closed"))
        }
        do {
            switch start {
            case .serializable: _ = try await self.raw(prepared: BeginSerializableStatement())
            case .readCommitted: _ = try await self.raw(prepared: BeginReadCommittedStatement())
            case .readOnlySnapshot: _ = try await self.raw(prepared: BeginReadOnlySnapshotStatement())
            }
        } catch let error
            where PostgresErrors.isConnectionLoss(error) || (error as? PSQLError).map({ $0.code != .server }) == true
        {
            // Also the server's own word that it is ending the connection (57P01 from a backend
            // being terminated: a failover, pg_terminate_backend), which can answer the BEGIN
            // before the socket closes.
            try? await self.connection.close()
            throw StaleConnection(error: PostgresErrors.storeError(error))
        } catch {
            throw PostgresErrors.storeError(error)
        }
    }

    /// Commits, unless the transaction is aborted: then it rolls back and throws why.
    func commit() async throws {
        let (conflict, failure) = self.state.withLock { state in
            state.isOpen = false
            return (state.conflict, state.failure)
        }
        if conflict != nil || failure != nil {
            await self.rollbackStatement()
            if let conflict { throw conflict }
            throw PostgresErrors.storeError(failure!)
        }
        do {
            _ = try await self.raw(prepared: CommitStatement())
        } catch let error as PSQLError where SQLState.isConflict(error.sqlState) {
            throw SerializationConflict(sqlState: error.sqlState ?? "")
        } catch {
            throw PostgresErrors.storeError(error)
        }
    }

    func rollback() async {
        self.state.withLock { $0.isOpen = false }
        await self.rollbackStatement()
    }

    /// If `ROLLBACK` fails the connection's state is unknown: it is closed, and the pool opens
    /// another. On a closed connection there is nothing to roll back (the server did when the
    /// connection ended), and postgres-nio never completes a statement sent on one: a request
    /// waited forever for the `ROLLBACK` of a transaction cut by a database shutdown
    /// (`ReplicaFaultProcessTests`).
    private func rollbackStatement() async {
        guard !self.connection.isClosed else { return }
        do {
            _ = try await self.raw("ROLLBACK")
        } catch {
            try? await self.connection.close()
        }
    }

    // MARK: Execution

    /// Sends one statement, bounded by the client-side deadline, and ended as soon as its
    /// connection closes: postgres-nio does not always complete a statement whose connection
    /// closed under it (a database shutdown), and a request waited for it forever
    /// (`ReplicaFaultProcessTests`). The statement's own task is then left to end when it may.
    private func raw(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await self.send { connection, logger in try await connection.query(query, logger: logger).collect() }
    }

    /// ``raw(_:)`` for a statement prepared on the connection (the first time, by name).
    private func raw<Statement: PostgresPreparedStatement>(prepared statement: Statement) async throws -> [PostgresRow]
    where Statement.Row == PostgresRow {
        try await self.send { connection, logger in
            var rows: [PostgresRow] = []
            for try await row in try await connection.execute(statement, logger: logger) { rows.append(row) }
            return rows
        }
    }

    private func send(
        _ statement: @escaping @Sendable (PostgresConnection, Logger) async throws -> [PostgresRow]
    ) async throws -> [PostgresRow] {
        let connection = self.connection
        // See rollbackStatement(): a statement sent on a closed connection would never complete.
        guard !connection.isClosed else { throw ConnectionClosedUnderStatement() }
        let (logger, clientDeadline, executor) = (self.logger, self.clientDeadline, self.executor)
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[PostgresRow], any Error>) in
            let settled = Locked(false)
            let watches = Locked<[@Sendable () -> Void]>([])
            let settle: @Sendable (Result<[PostgresRow], any Error>) -> Void = { result in
                let first = settled.withLock { done in
                    defer { done = true }
                    return !done
                }
                guard first else { return }
                for cancel in watches.withLock({ $0 }) { cancel() }
                continuation.resume(with: result)
            }
            let deadline = connection.eventLoop.scheduleTask(in: clientDeadline) {
                connection.close().whenComplete { _ in }
                settle(.failure(ConnectionClosedUnderStatement()))
            }
            let closed = connection.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { task in
                if connection.isClosed {
                    task.cancel()
                    settle(.failure(ConnectionClosedUnderStatement()))
                }
            }
            watches.withLock { $0 = [{ deadline.cancel() }, { closed.cancel() }] }
            Task(executorPreference: executor) {
                do {
                    settle(.success(try await statement(connection, logger)))
                } catch {
                    settle(.failure(error))
                }
            }
        }
    }

    /// Runs one statement of the transaction.
    ///
    /// - Parameters:
    ///   - duplicate: what to name in ``StoreError/duplicate(_:)`` when a UNIQUE or PRIMARY KEY
    ///     constraint fails (given the constraint's name).
    ///   - missingReference: what to name in ``StoreError/notFound(_:)`` when a FOREIGN KEY
    ///     constraint fails; called after the statement was undone, so it may query.
    ///   - undoingAlone: whether such a failure is undone alone (a savepoint around the statement:
    ///     two more round trips), or only named, leaving the transaction to roll back (then
    ///     `missingReference` must not query). Without, for statements of hot paths whose
    ///     callers never carry on after the failure.
    @discardableResult
    private func execute(
        _ query: PostgresQuery,
        duplicate: ((String) -> String)? = nil,
        missingReference: (() async throws -> String)? = nil,
        undoingAlone: Bool = true
    ) async throws -> [PostgresRow] {
        try await self.execute(
            { try await self.raw(query) }, duplicate: duplicate, missingReference: missingReference, undoingAlone: undoingAlone)
    }

    /// ``execute(_:duplicate:missingReference:undoingAlone:)`` for a statement of a hot path
    /// (``HotPathStatement``), prepared on the connection by name the first time it runs there.
    @discardableResult
    private func execute<Statement: HotPathStatement>(
        prepared statement: Statement,
        duplicate: ((String) -> String)? = nil,
        missingReference: (() async throws -> String)? = nil,
        undoingAlone: Bool = true
    ) async throws -> [PostgresRow] {
        try await self.execute(
            { try await self.raw(prepared: statement) }, duplicate: duplicate, missingReference: missingReference,
            undoingAlone: undoingAlone)
    }

    private func execute(
        _ run: () async throws -> [PostgresRow],
        duplicate: ((String) -> String)?,
        missingReference: (() async throws -> String)?,
        undoingAlone: Bool
    ) async throws -> [PostgresRow] {
        try Task.checkCancellation()
        try self.state.withLock { state in
            guard state.isOpen else { throw StoreError.engine("transaction is closed") }
            if state.conflict != nil || state.failure != nil {
                throw StoreError.engine("the transaction was aborted by an earlier failure")
            }
        }
        let named = duplicate != nil || missingReference != nil
        let guarded = named && undoingAlone
        do {
            if guarded { _ = try await self.raw("SAVEPOINT broker_statement") }
            let rows = try await run()
            if guarded { _ = try await self.raw("RELEASE SAVEPOINT broker_statement") }
            return rows
        } catch let error as PSQLError
            where guarded && error.sqlState == SQLState.uniqueViolation && duplicate != nil
        {
            try await self.undoStatement(error)
            throw StoreError.duplicate(duplicate!(error.constraintName))
        } catch let error as PSQLError
            where guarded && error.sqlState == SQLState.foreignKeyViolation && missingReference != nil
        {
            try await self.undoStatement(error)
            throw StoreError.notFound(try await missingReference!())
        } catch let error as PSQLError where named && error.sqlState == SQLState.uniqueViolation && duplicate != nil {
            _ = self.abort(error)
            throw StoreError.duplicate(duplicate!(error.constraintName))
        } catch let error as PSQLError
            where named && error.sqlState == SQLState.foreignKeyViolation && missingReference != nil
        {
            _ = self.abort(error)
            throw StoreError.notFound(try await missingReference!())
        } catch {
            throw self.abort(error)
        }
    }

    private func undoStatement(_ cause: PSQLError) async throws {
        do {
            _ = try await self.raw("ROLLBACK TO SAVEPOINT broker_statement")
            _ = try await self.raw("RELEASE SAVEPOINT broker_statement")
        } catch {
            throw self.abort(error)
        }
    }

    /// Records that the transaction cannot commit, and what to throw.
    private func abort(_ error: any Error) -> any Error {
        if let error = error as? PSQLError, SQLState.isConflict(error.sqlState) {
            let conflict = SerializationConflict(sqlState: error.sqlState ?? "")
            self.state.withLock { $0.conflict = $0.conflict ?? conflict }
            return conflict
        }
        let translated = PostgresErrors.storeError(error)
        let lost = PostgresErrors.isConnectionLoss(error)
        self.state.withLock {
            $0.failure = $0.failure ?? translated
            $0.connectionLost = $0.connectionLost || lost
        }
        return translated
    }

    /// See ``State/connectionLost``.
    var connectionLost: Bool { self.state.withLock { $0.connectionLost } }

    /// Runs an UPDATE … RETURNING and throws ``StoreError/notFound(_:)`` if it changed no row.
    private func update(_ query: PostgresQuery, notFound what: String) async throws {
        if try await self.execute(query).isEmpty {
            throw StoreError.notFound(what)
        }
    }

    private func exists(_ query: PostgresQuery) async throws -> Bool {
        try await !self.execute(query).isEmpty
    }

    /// Names whichever of a user and an organization does not exist.
    private func missingUserOrOrganization(userID: Int64, organizationID: Int64) async throws -> String {
        if try await !self.exists("SELECT 1 FROM organizations WHERE id = \(organizationID)") {
            return "organization \(organizationID)"
        }
        if try await !self.exists("SELECT 1 FROM users WHERE id = \(userID)") {
            return "user \(userID)"
        }
        return "organization \(organizationID) or user \(userID)"
    }

    // MARK: Users

    static let userColumns =
        "id, username, password_hash, is_active, created_at, github_login, github_id, global_role, credential_version, "
        + "session_version"

    static func versions(from row: Row) throws -> AccountVersions {
        try AccountVersions(
            credential: CredentialVersion(rawValue: row.int64("credential_version")),
            session: SessionVersion(rawValue: row.int64("session_version")))
    }

    static func user(from row: Row) throws -> User {
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

    private func users(_ query: PostgresQuery) async throws -> [User] {
        try await self.execute(query).map { try Self.user(from: Row($0)) }
    }

    func insertUser(_ user: NewUser) async throws -> User {
        let forms = AccountName.storedForms(of: user.username)
        let idColumn = user.preferredID == nil ? "" : "id, "
        let idValue = user.preferredID.map { "\($0), " } ?? ""  // an Int64: a literal is safe
        let rows = try await self.execute(
            """
            INSERT INTO users (\(unescaped: idColumn)username, password_hash, is_active, created_at, github_login, github_id,
                global_role, username_key, username_skeleton)
            VALUES (\(unescaped: idValue)\(user.username), \(user.passwordHash), \(user.isActive), \(user.createdAt.timeIntervalSince1970),
                \(user.githubLogin), \(user.githubID), \(user.globalRole?.rawValue), \(forms.key), \(forms.skeleton))
            RETURNING id, credential_version, session_version
            """,
            duplicate: { constraint in
                if constraint.contains("github_login") { return "GitHub login \(user.githubLogin ?? "")" }
                if constraint.contains("github_id") { return "GitHub user id \(user.githubID.map(String.init) ?? "")" }
                return "user \(user.username)"
            }
        )
        guard let row = rows.first.map(Row.init) else { throw StoreError.engine("INSERT INTO users returned no id") }
        if let preferredID = user.preferredID {
            // An id given explicitly does not advance the identity sequence: move it past, so
            // that the next account's id is free (and no id is ever handed out twice).
            try await self.execute(
                """
                SELECT setval(pg_get_serial_sequence('users', 'id'),
                    GREATEST(\(preferredID), pg_sequence_last_value(pg_get_serial_sequence('users', 'id')::regclass)))
                """)
        }
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
        // SQLite's NOCASE: ASCII letters only, as the unique index compares them.
        try await self.users(
            "SELECT \(unescaped: Self.userColumns) FROM users WHERE broker_ascii_lower(github_login) = broker_ascii_lower(\(login))"
        ).first
    }

    func user(githubID: Int64) async throws -> User? {
        try await self.users("SELECT \(unescaped: Self.userColumns) FROM users WHERE github_id = \(githubID)").first
    }

    func setGitHubLink(userID: Int64, login: String?, id: Int64?) async throws {
        let rows = try await self.execute(
            "UPDATE users SET github_login = \(login), github_id = \(id) WHERE id = \(userID) RETURNING id",
            duplicate: { constraint in
                constraint.contains("github_id") ? "GitHub user id \(id.map(String.init) ?? "")" : "GitHub login \(login ?? "")"
            }
        )
        if rows.isEmpty { throw StoreError.notFound("user \(userID)") }
    }

    func user(named username: String) async throws -> User? {
        try await self.users(
            """
            SELECT \(unescaped: Self.userColumns) FROM users WHERE username_key = \(AccountName.key(of: username))
            ORDER BY username = \(username) DESC, username_collision IS NOT NULL, id LIMIT 1
            """
        ).first
    }

    func user(confusableWith name: String) async throws -> User? {
        try await self.users(
            """
            SELECT \(unescaped: Self.userColumns) FROM users WHERE username_skeleton = \(AccountName.storedForms(of: name).skeleton)
            ORDER BY username_collision IS NOT NULL, id LIMIT 1
            """
        ).first
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
            let row = Row(row)
            return NameCollision(
                kind: try row.string("kind") == "user" ? .user : .organization, name: try row.string("name"),
                readsLike: try row.optionalString("reads_like"))
        }
    }

    func user(id: Int64) async throws -> User? {
        try await self.users("SELECT \(unescaped: Self.userColumns) FROM users WHERE id = \(id)").first
    }

    func users() async throws -> [User] {
        try await self.users("SELECT \(unescaped: Self.userColumns) FROM users ORDER BY id")
    }

    func users(afterID: Int64, limit: Int) async throws -> [User] {
        try await self.users(
            "SELECT \(unescaped: Self.userColumns) FROM users WHERE id > \(afterID) ORDER BY id LIMIT \(Int64(max(0, limit)))")
    }

    func setGlobalRole(userID: Int64, to role: GlobalRole?) async throws {
        try await self.update(
            "UPDATE users SET global_role = \(role?.rawValue) WHERE id = \(userID) RETURNING id", notFound: "user \(userID)")
    }

    func deleteUser(id: Int64) async throws -> Bool {
        guard try await self.exists("DELETE FROM users WHERE id = \(id) RETURNING id") else { return false }
        try await self.handOverName(table: "users", name: "username", from: id)
        return true
    }

    /// A deleted row that held a name others were flagged as colliding with leaves it to the
    /// oldest of them (see SQLite's name-key migration). `table` and `name` are fixed
    /// identifiers, never input.
    private func handOverName(table: String, name: String, from deletedID: Int64) async throws {
        let heir = try await self.execute(
            """
            UPDATE \(unescaped: table) SET \(unescaped: name)_collision = NULL
            WHERE id = (SELECT MIN(id) FROM \(unescaped: table) WHERE \(unescaped: name)_collision = \(deletedID)) RETURNING id
            """)
        guard let heirID = try heir.first.map({ try Row($0).int64("id") }) else { return }
        try await self.execute(
            """
            UPDATE \(unescaped: table) SET \(unescaped: name)_collision = \(heirID) WHERE \(unescaped: name)_collision = \(deletedID)
            """)
    }

    func updatePasswordHash(userID: Int64, to hash: String?) async throws {
        try await self.update(
            "UPDATE users SET password_hash = \(hash) WHERE id = \(userID) RETURNING id", notFound: "user \(userID)")
    }

    func setUserActive(userID: Int64, _ active: Bool) async throws {
        try await self.update(
            "UPDATE users SET is_active = \(active) WHERE id = \(userID) RETURNING id", notFound: "user \(userID)")
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
            """
            UPDATE users SET \(unescaped: column) = \(unescaped: column) + 1 WHERE id = \(userID)
            RETURNING credential_version, session_version
            """)
        guard let row = rows.first else { throw StoreError.notFound("user \(userID)") }
        return try Self.versions(from: Row(row))
    }

    // MARK: Organizations

    static let organizationColumns = "id, name, cluster_name, created_at, access_lifetime, audiences"

    private static func organization(from row: Row) throws -> Organization {
        try Organization(
            id: row.int64("id"),
            name: row.string("name"),
            clusterName: row.string("cluster_name"),
            createdAt: row.date("created_at"),
            tokenPolicy: tokenPolicy(from: row)
        )
    }

    static func tokenPolicy(from row: Row) throws -> OrganizationTokenPolicy {
        OrganizationTokenPolicy(
            accessLifetime: try row.optionalInt64("access_lifetime").map { Int($0) },
            audiences: try row.optionalStringList("audiences"))
    }

    private func organizations(_ query: PostgresQuery) async throws -> [Organization] {
        try await self.execute(query).map { try Self.organization(from: Row($0)) }
    }

    func insertOrganization(name: String, clusterName: String, createdAt: Date) async throws -> Organization {
        let forms = AccountName.storedForms(of: name)
        let rows = try await self.execute(
            """
            INSERT INTO organizations (name, cluster_name, created_at, name_key, name_skeleton)
            VALUES (\(name), \(clusterName), \(createdAt.timeIntervalSince1970), \(forms.key), \(forms.skeleton)) RETURNING id
            """,
            duplicate: { constraint in
                constraint.contains("cluster_name") ? "organization cluster name \(clusterName)" : "organization \(name)"
            }
        )
        guard let row = rows.first else { throw StoreError.engine("INSERT INTO organizations returned no id") }
        return try Organization(id: Row(row).int64("id"), name: name, clusterName: clusterName, createdAt: createdAt)
    }

    func setTokenPolicy(organizationID: Int64, to policy: OrganizationTokenPolicy) async throws {
        try await self.update(
            """
            UPDATE organizations SET access_lifetime = \(policy.accessLifetime.map { Int64($0) }), audiences = \(policy.audiences)
            WHERE id = \(organizationID) RETURNING id
            """,
            notFound: "organization \(organizationID)"
        )
    }

    func deleteOrganization(id: Int64) async throws -> Bool {
        guard try await self.exists("DELETE FROM organizations WHERE id = \(id) RETURNING id") else { return false }
        try await self.handOverName(table: "organizations", name: "name", from: id)
        return true
    }

    func organizationUsingAudience(_ name: String) async throws -> Organization? {
        try await self.organizations(
            """
            SELECT \(unescaped: Self.organizationColumns) FROM organizations
            WHERE cluster_name = \(name) OR \(name) = ANY (audiences)
            ORDER BY name LIMIT 1
            """
        ).first
    }

    // MARK: Audience names

    private static let audienceColumns = "name, kind, organization_id, former_organization"

    private static func audienceName(from row: Row) throws -> AudienceName {
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

    private func audienceNames(_ query: PostgresQuery) async throws -> [AudienceName] {
        try await self.execute(query).map { try Self.audienceName(from: Row($0)) }
    }

    func insertAudienceName(_ name: AudienceName) async throws {
        let (kind, organizationID, former): (String, Int64?, String?) =
            switch name.holder {
            case .organization(let id, let use): (use.rawValue, id, nil)
            case .reserved(let former): ("cluster", nil, former)
            case .service: ("service", nil, nil)
            }
        try await self.execute(
            """
            INSERT INTO audience_names (name, kind, organization_id, former_organization)
            VALUES (\(name.name), \(kind), \(organizationID), \(former))
            """,
            duplicate: { _ in "audience name \(name.name)" },
            missingReference: { "organization" }
        )
    }

    func audienceName(_ name: String) async throws -> AudienceName? {
        try await self.audienceNames(
            "SELECT \(unescaped: Self.audienceColumns) FROM audience_names WHERE name = \(name)").first
    }

    func audienceNames() async throws -> [AudienceName] {
        try await self.audienceNames("SELECT \(unescaped: Self.audienceColumns) FROM audience_names ORDER BY name")
    }

    func updateAudienceNameUse(_ name: String, organizationID: Int64, to use: AudienceName.Use) async throws {
        try await self.update(
            """
            UPDATE audience_names SET kind = \(use.rawValue) WHERE name = \(name) AND organization_id = \(organizationID)
            RETURNING name
            """,
            notFound: "audience name \(name) of organization \(organizationID)"
        )
    }

    func deleteAudienceNames(organizationID: Int64, use: AudienceName.Use, keeping: [String]) async throws {
        try await self.execute(
            """
            DELETE FROM audience_names WHERE organization_id = \(organizationID) AND kind = \(use.rawValue)
                AND NOT (name = ANY (\(keeping)))
            """)
    }

    func reserveAudienceNames(organizationID: Int64, formerOrganization: String) async throws {
        try await self.execute(
            """
            UPDATE audience_names SET organization_id = NULL, former_organization = \(formerOrganization)
            WHERE organization_id = \(organizationID)
            """)
    }

    func deleteReservedAudienceName(_ name: String) async throws -> AudienceName? {
        try await self.audienceNames(
            """
            DELETE FROM audience_names WHERE name = \(name) AND kind <> 'service' AND organization_id IS NULL
            RETURNING \(unescaped: Self.audienceColumns)
            """
        ).first
    }

    func deleteServiceAudience(_ name: String) async throws -> Bool {
        try await self.exists(
            """
            DELETE FROM audience_names WHERE name = \(name) AND kind = 'service' AND NOT EXISTS (
                SELECT 1 FROM organizations AS o WHERE \(name) = ANY (o.audiences))
            RETURNING name
            """)
    }

    func organization(named name: String) async throws -> Organization? {
        try await self.organizations(
            """
            SELECT \(unescaped: Self.organizationColumns) FROM organizations WHERE name_key = \(AccountName.key(of: name))
            ORDER BY name = \(name) DESC, name_collision IS NOT NULL, id LIMIT 1
            """
        ).first
    }

    func organization(confusableWith name: String) async throws -> Organization? {
        try await self.organizations(
            """
            SELECT \(unescaped: Self.organizationColumns) FROM organizations
            WHERE name_skeleton = \(AccountName.storedForms(of: name).skeleton)
            ORDER BY name_collision IS NOT NULL, id LIMIT 1
            """
        ).first
    }

    func organization(id: Int64) async throws -> Organization? {
        try await self.organizations("SELECT \(unescaped: Self.organizationColumns) FROM organizations WHERE id = \(id)").first
    }

    func organizations() async throws -> [Organization] {
        try await self.organizations("SELECT \(unescaped: Self.organizationColumns) FROM organizations ORDER BY name")
    }

    // MARK: Memberships

    static let membershipColumns = "organization_id, user_id, role, is_active, created_at"

    private static func membership(from row: Row) throws -> Membership {
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
        try await self.execute(
            """
            INSERT INTO memberships (organization_id, user_id, role, is_active, created_at)
            VALUES (\(membership.organizationID), \(membership.userID), \(membership.role.rawValue), \(membership.isActive),
                \(membership.createdAt.timeIntervalSince1970))
            ON CONFLICT (organization_id, user_id) DO UPDATE SET
                role = excluded.role, is_active = excluded.is_active, created_at = excluded.created_at
            """,
            missingReference: {
                try await self.missingUserOrOrganization(userID: membership.userID, organizationID: membership.organizationID)
            }
        )
    }

    func membership(organizationID: Int64, userID: Int64) async throws -> Membership? {
        try await self.execute(
            """
            SELECT \(unescaped: Self.membershipColumns) FROM memberships
            WHERE organization_id = \(organizationID) AND user_id = \(userID)
            """
        ).first.map { try Self.membership(from: Row($0)) }
    }

    func members(organizationID: Int64) async throws -> [MemberListing] {
        try await self.execute(
            """
            SELECT u.username, m.organization_id, m.user_id, m.role, m.is_active, m.created_at
            FROM memberships AS m JOIN users AS u ON u.id = m.user_id
            WHERE m.organization_id = \(organizationID)
            ORDER BY u.username
            """
        ).map { row in
            let row = Row(row)
            return try MemberListing(username: row.string("username"), membership: Self.membership(from: row))
        }
    }

    func organizations(named names: [String]) async throws -> [Organization] {
        guard !names.isEmpty else { return [] }
        return try await self.organizations(
            "SELECT \(unescaped: Self.organizationColumns) FROM organizations WHERE name = ANY (\(names)) ORDER BY name")
    }

    func memberships(userID: Int64) async throws -> [UserMembership] {
        try await self.execute(
            """
            SELECT o.id, o.name, o.cluster_name, o.created_at AS organization_created_at,
                   o.access_lifetime, o.audiences, m.organization_id, m.user_id, m.role, m.is_active, m.created_at
            FROM memberships AS m JOIN organizations AS o ON o.id = m.organization_id
            WHERE m.user_id = \(userID)
            ORDER BY o.name
            """
        ).map { row in
            let row = Row(row)
            return try UserMembership(
                organization: Organization(
                    id: row.int64("id"), name: row.string("name"), clusterName: row.string("cluster_name"),
                    createdAt: row.date("organization_created_at"), tokenPolicy: Self.tokenPolicy(from: row)),
                membership: Self.membership(from: row))
        }
    }

    func deleteMembership(organizationID: Int64, userID: Int64) async throws -> Bool {
        try await self.exists(
            "DELETE FROM memberships WHERE organization_id = \(organizationID) AND user_id = \(userID) RETURNING user_id")
    }

    // MARK: Membership requests

    func insertMembershipRequest(organizationID: Int64, userID: Int64, at date: Date) async throws {
        try await self.execute(
            """
            INSERT INTO membership_requests (organization_id, user_id, requested_at)
            VALUES (\(organizationID), \(userID), \(date.timeIntervalSince1970))
            """,
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

    private func membershipRequests(_ query: PostgresQuery) async throws -> [MembershipRequest] {
        try await self.execute(query).map { row in
            let row = Row(row)
            return try MembershipRequest(
                organizationID: row.int64("organization_id"), userID: row.int64("user_id"),
                username: row.string("username"), requestedAt: row.date("requested_at"))
        }
    }

    func membershipRequests(organizationID: Int64) async throws -> [MembershipRequest] {
        try await self.membershipRequests(
            """
            \(unescaped: Self.membershipRequestQuery) WHERE r.organization_id = \(organizationID)
            ORDER BY r.requested_at, u.username
            """)
    }

    func membershipRequest(organizationID: Int64, userID: Int64) async throws -> MembershipRequest? {
        try await self.membershipRequests(
            """
            \(unescaped: Self.membershipRequestQuery) WHERE r.organization_id = \(organizationID) AND r.user_id = \(userID)
            """
        ).first
    }

    func membershipRequests(userID: Int64) async throws -> [OwnMembershipRequest] {
        try await self.execute(
            """
            SELECT r.organization_id, o.name, o.cluster_name, r.requested_at
            FROM membership_requests AS r JOIN organizations AS o ON o.id = r.organization_id
            WHERE r.user_id = \(userID) ORDER BY r.requested_at, o.name
            """
        ).map { row in
            let row = Row(row)
            return try OwnMembershipRequest(
                organizationID: row.int64("organization_id"), organizationName: row.string("name"),
                clusterName: row.string("cluster_name"), requestedAt: row.date("requested_at"))
        }
    }

    func deleteMembershipRequest(organizationID: Int64, userID: Int64) async throws -> Bool {
        try await self.exists(
            """
            DELETE FROM membership_requests WHERE organization_id = \(organizationID) AND user_id = \(userID)
            RETURNING user_id
            """)
    }

    // MARK: Refresh families

    static let familyColumns =
        "id, user_id, kind, organization_id, authenticated_at, expires_at, amr, revoked_at, revocation_reason, "
        + "credential_version, session_version, client_ip, user_agent, client_id"

    private static func sessionScope(from row: Row) throws -> SessionScope {
        switch (try row.string("kind"), try row.optionalInt64("organization_id")) {
        case ("organization", let organizationID?): .organization(id: organizationID)
        case ("all_clusters", nil): .allClusters
        case ("broker", nil): .broker
        default: throw StoreError.engine("unexpected value in column kind")
        }
    }

    private static func refreshFamily(from row: Row) throws -> RefreshFamily {
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
    private static func sessionOrigin(from row: Row) throws -> SessionOrigin? {
        let (clientIP, userAgent) = (try row.optionalString("client_ip"), try row.optionalString("user_agent"))
        if clientIP == nil && userAgent == nil { return nil }
        return SessionOrigin(clientIP: clientIP, userAgent: userAgent)
    }

    func insertRefreshFamily(_ family: RefreshFamily) async throws {
        try await self.execute(
            """
            INSERT INTO refresh_families (\(unescaped: Self.familyColumns)) VALUES (
                \(family.id), \(family.userID), \(family.scope.kind), \(family.organizationID),
                \(family.authenticatedAt.timeIntervalSince1970), \(family.expiresAt.timeIntervalSince1970),
                \(family.authenticationMethods), \(family.revokedAt?.timeIntervalSince1970), \(family.revocationReason),
                \(family.accountVersions.credential.rawValue), \(family.accountVersions.session.rawValue),
                \(family.origin?.clientIP), \(family.origin?.userAgent), \(family.client?.rawValue))
            """,
            duplicate: { _ in "refresh family \(family.id)" },
            missingReference: {
                guard let organizationID = family.organizationID else { return "user \(family.userID)" }
                return try await self.missingUserOrOrganization(userID: family.userID, organizationID: organizationID)
            }
        )
    }

    func refreshFamily(id: String) async throws -> RefreshFamily? {
        try await self.execute(
            "SELECT \(unescaped: Self.familyColumns) FROM refresh_families WHERE id = \(id)"
        ).first.map { try Self.refreshFamily(from: Row($0)) }
    }

    func revokeRefreshFamily(id: String, at date: Date, reason: String) async throws {
        // In an UPDATE every expression sees the row as it was: the first revocation wins.
        try await self.update(
            """
            UPDATE refresh_families SET
                revoked_at = COALESCE(revoked_at, \(date.timeIntervalSince1970)),
                revocation_reason = CASE WHEN revoked_at IS NULL THEN \(reason) ELSE revocation_reason END
            WHERE id = \(id) RETURNING id
            """,
            notFound: "refresh family \(id)"
        )
    }

    /// A token hash is a digest, safe to show, but a prefix is enough to tell two apart in a message.
    private static func describeToken(hash: String) -> String {
        "refresh token \(hash.prefix(12))…"
    }

    func insertRefreshToken(_ token: RefreshTokenRecord) async throws {
        try await self.execute(
            prepared: InsertRefreshTokenStatement(token: token),
            duplicate: { _ in Self.describeToken(hash: token.tokenHash) },
            missingReference: { "refresh family \(token.familyID)" },
            // Every renewal inserts one; no caller carries on after a failed insert.
            undoingAlone: false
        )
    }

    static let tokenColumns = "token_hash, family_id, issued_at, expires_at, used_at"

    private static func refreshToken(from row: Row) throws -> RefreshTokenRecord {
        try RefreshTokenRecord(
            tokenHash: row.string("token_hash"), familyID: row.string("family_id"), issuedAt: row.date("issued_at"),
            expiresAt: row.date("expires_at"), usedAt: row.optionalDate("used_at"))
    }

    func refreshToken(hash: String) async throws -> RefreshTokenRecord? {
        try await self.execute(
            "SELECT \(unescaped: Self.tokenColumns) FROM refresh_tokens WHERE token_hash = \(hash)"
        ).first.map { try Self.refreshToken(from: Row($0)) }
    }

    /// One statement (``RenewalSnapshotStatement``), the token locked `FOR NO KEY UPDATE`: what
    /// the renewal's `UPDATE` of `used_at` takes anyway, taken when reading, so a second renewal
    /// of the token waits here and then reads the token as the first left it (`READ COMMITTED`
    /// reads the newest version of a row it waited for). It does not block the `KEY SHARE` lock
    /// the successor's foreign key takes on the family.
    ///
    /// With a window the session's renewals are counted in that statement too
    /// (``CountingRenewalSnapshotStatement``). Its snapshot is the statement's: a renewal that
    /// waited for the token's lock counts what had committed when it was sent. That is every
    /// renewal before it, since a session's renewals follow one another, each using the token
    /// the last one issued.
    func renewal(ofTokenHash tokenHash: String, counting window: RenewalWindow?) async throws -> RenewalSnapshot? {
        let rows =
            if let window {
                try await self.execute(prepared: CountingRenewalSnapshotStatement(tokenHash: tokenHash, window: window))
            } else {
                try await self.execute(prepared: RenewalSnapshotStatement(tokenHash: tokenHash))
            }
        guard let row = rows.first.map(Row.init) else { return nil }
        let (user, organization, membership) = (row.table("u_"), row.table("o_"), row.table("m_"))
        return try RenewalSnapshot(
            token: Self.refreshToken(from: row.table("t_")),
            family: Self.refreshFamily(from: row.table("f_")),
            user: user.optionalInt64("id") == nil ? nil : Self.user(from: user),
            organization: organization.optionalInt64("id") == nil ? nil : Self.organization(from: organization),
            membership: membership.optionalInt64("user_id") == nil ? nil : Self.membership(from: membership),
            limitingRenewal: window == nil ? nil : row.optionalDate("limiting_renewal"))
    }

    /// `columns` (a comma-separated list) of table `alias`, each named `alias_column`.
    static func aliased(_ columns: String, of alias: String) -> String {
        columns.split(separator: ",").map { column in
            let name = column.trimmingCharacters(in: .whitespaces)
            return "\(alias).\(name) AS \(alias)_\(name)"
        }.joined(separator: ", ")
    }

    /// Not on a hot path any more: a renewal marks its token in the statement that inserts the
    /// successor (``markRefreshTokenUsed(hash:at:insertingSuccessor:)``).
    func markRefreshTokenUsed(hash: String, at date: Date) async throws {
        // The first use is kept: the grace window for concurrent refreshes counts from it.
        try await self.update(
            """
            UPDATE refresh_tokens SET used_at = COALESCE(used_at, \(date.timeIntervalSince1970))
            WHERE token_hash = \(hash) RETURNING token_hash
            """,
            notFound: Self.describeToken(hash: hash))
    }

    func markRefreshTokenUsed(
        hash: String, at date: Date, insertingSuccessor successor: RefreshTokenRecord
    ) async throws {
        let statement = RenewRefreshTokenStatement(usedHash: hash, usedAt: date.timeIntervalSince1970, successor: successor)
        let inserted = try await self.execute(
            prepared: statement,
            duplicate: { _ in Self.describeToken(hash: successor.tokenHash) },
            missingReference: { "refresh family \(successor.familyID)" },
            // As insertRefreshToken's: no caller carries on after a failed renewal.
            undoingAlone: false
        )
        if inserted.isEmpty {
            throw StoreError.notFound(Self.describeToken(hash: hash))
        }
    }

    func refreshFamilies(userID: Int64) async throws -> [RefreshFamily] {
        try await self.execute(
            """
            SELECT \(unescaped: Self.familyColumns) FROM refresh_families WHERE user_id = \(userID)
            ORDER BY authenticated_at DESC, id
            """
        ).map { try Self.refreshFamily(from: Row($0)) }
    }

    func revokeRefreshFamilies(userID: Int64, at date: Date, reason: String) async throws -> Int {
        let seconds = date.timeIntervalSince1970
        return try await self.execute(
            """
            UPDATE refresh_families SET revoked_at = \(seconds), revocation_reason = \(reason)
            WHERE user_id = \(userID) AND revoked_at IS NULL AND expires_at > \(seconds) RETURNING id
            """
        ).count
    }

    // MARK: Portal sessions

    /// A cookie's hash is a digest, safe to show, but a prefix is enough to tell two apart in a message.
    private static func describePortalSession(idHash: String) -> String {
        "portal session \(idHash.prefix(12))…"
    }

    func insertPortalSession(idHash: String, familyID: String, at date: Date) async throws {
        try await self.execute(
            """
            INSERT INTO portal_sessions (id_hash, family_id, last_seen_at)
            VALUES (\(idHash), \(familyID), \(date.timeIntervalSince1970))
            """,
            duplicate: { constraint in
                constraint.contains("family_id")
                    ? "portal session of refresh family \(familyID)" : Self.describePortalSession(idHash: idHash)
            },
            missingReference: { "refresh family \(familyID)" }
        )
    }

    /// What ``portalSession(idHash:)``'s one statement reads: the row, its family and the account.
    private static let portalSessionColumns = """
        p.id_hash, p.last_seen_at, \(aliased(familyColumns, of: "f")), \(aliased(userColumns, of: "u"))
        """

    func portalSession(idHash: String) async throws -> PortalSessionSnapshot? {
        guard
            let row = try await self.execute(
                """
                SELECT \(unescaped: Self.portalSessionColumns)
                FROM portal_sessions AS p
                JOIN refresh_families AS f ON f.id = p.family_id
                LEFT JOIN users AS u ON u.id = f.user_id
                WHERE p.id_hash = \(idHash)
                """
            ).first.map(Row.init)
        else { return nil }
        let user = row.table("u_")
        return try PortalSessionSnapshot(
            idHash: row.string("id_hash"), family: Self.refreshFamily(from: row.table("f_")),
            lastSeenAt: row.date("last_seen_at"), user: user.optionalInt64("id") == nil ? nil : Self.user(from: user))
    }

    func touchPortalSession(idHash: String, at date: Date) async throws {
        try await self.update(
            """
            UPDATE portal_sessions SET last_seen_at = GREATEST(last_seen_at, \(date.timeIntervalSince1970))
            WHERE id_hash = \(idHash) RETURNING id_hash
            """,
            notFound: Self.describePortalSession(idHash: idHash)
        )
    }

    func deletePortalSession(idHash: String) async throws -> Bool {
        try await self.exists("DELETE FROM portal_sessions WHERE id_hash = \(idHash) RETURNING id_hash")
    }

    func portalSessionLastSeen(userID: Int64) async throws -> [String: Date] {
        var lastSeen: [String: Date] = [:]
        for row in try await self.execute(
            """
            SELECT p.family_id, p.last_seen_at FROM refresh_families AS f JOIN portal_sessions AS p ON p.family_id = f.id
            WHERE f.user_id = \(userID)
            """
        ) {
            let row = Row(row)
            lastSeen[try row.string("family_id")] = try row.date("last_seen_at")
        }
        return lastSeen
    }

    // MARK: Invitations

    private static let invitationColumns =
        "id, code_hash, organization_id, role, created_by, created_at, expires_at, used_at, used_by"

    private static func invitation(from row: Row) throws -> Invitation {
        guard let role = Role(rawValue: try row.string("role")) else {
            throw StoreError.engine("unknown role in column portal_invites.role")
        }
        return try Invitation(
            id: row.string("id"), codeHash: row.string("code_hash"), organizationID: row.optionalInt64("organization_id"),
            role: role, createdBy: row.optionalInt64("created_by"), createdAt: row.date("created_at"),
            expiresAt: row.date("expires_at"), usedAt: row.optionalDate("used_at"), usedBy: row.optionalInt64("used_by"))
    }

    private func invitations(_ query: PostgresQuery) async throws -> [Invitation] {
        try await self.execute(query).map { try Self.invitation(from: Row($0)) }
    }

    /// Names whichever of the rows an invitation refers to does not exist.
    private func missingInvitationReference(_ invitation: Invitation) async throws -> String {
        if let organizationID = invitation.organizationID,
            try await !self.exists("SELECT 1 FROM organizations WHERE id = \(organizationID)")
        {
            return "organization \(organizationID)"
        }
        for userID in [invitation.createdBy, invitation.usedBy].compactMap({ $0 }) {
            if try await !self.exists("SELECT 1 FROM users WHERE id = \(userID)") { return "user \(userID)" }
        }
        return "organization or user of invitation \(invitation.id)"
    }

    func insertInvitation(_ invitation: Invitation) async throws {
        try await self.execute(
            """
            INSERT INTO portal_invites (\(unescaped: Self.invitationColumns)) VALUES (
                \(invitation.id), \(invitation.codeHash), \(invitation.organizationID), \(invitation.role.rawValue),
                \(invitation.createdBy), \(invitation.createdAt.timeIntervalSince1970), \(invitation.expiresAt.timeIntervalSince1970),
                \(invitation.usedAt?.timeIntervalSince1970), \(invitation.usedBy))
            """,
            duplicate: { constraint in constraint.contains("code_hash") ? "invitation code" : "invitation \(invitation.id)" },
            missingReference: { try await self.missingInvitationReference(invitation) }
        )
    }

    func invitation(codeHash: String) async throws -> Invitation? {
        try await self.invitations(
            "SELECT \(unescaped: Self.invitationColumns) FROM portal_invites WHERE code_hash = \(codeHash)"
        ).first
    }

    func invitation(id: String) async throws -> Invitation? {
        try await self.invitations("SELECT \(unescaped: Self.invitationColumns) FROM portal_invites WHERE id = \(id)").first
    }

    func invitations(organizationID: Int64?) async throws -> [Invitation] {
        guard let organizationID else {
            return try await self.invitations(
                """
                SELECT \(unescaped: Self.invitationColumns) FROM portal_invites WHERE organization_id IS NULL
                ORDER BY created_at DESC, id
                """)
        }
        return try await self.invitations(
            """
            SELECT \(unescaped: Self.invitationColumns) FROM portal_invites WHERE organization_id = \(organizationID)
            ORDER BY created_at DESC, id
            """)
    }

    func redeemInvitation(id: String, by userID: Int64, at date: Date) async throws -> Bool {
        let now = date.timeIntervalSince1970
        return try await !self.execute(
            """
            UPDATE portal_invites SET used_at = \(now), used_by = \(userID)
            WHERE id = \(id) AND used_at IS NULL AND expires_at > \(now) RETURNING id
            """,
            missingReference: { "user \(userID)" }
        ).isEmpty
    }

    func deleteInvitation(id: String) async throws -> Bool {
        try await self.exists("DELETE FROM portal_invites WHERE id = \(id) RETURNING id")
    }

    // MARK: Revoked access tokens

    func insertRevokedAccessToken(jti: String, expiresAt: Date) async throws {
        try await self.execute(
            """
            INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (\(jti), \(expiresAt.timeIntervalSince1970))
            ON CONFLICT (jti) DO NOTHING
            """)
    }

    func isAccessTokenRevoked(jti: String) async throws -> Bool {
        try await self.exists("SELECT 1 FROM revoked_access_tokens WHERE jti = \(jti)")
    }

    func pruneRevokedAccessTokens(before date: Date) async throws {
        try await self.execute("DELETE FROM revoked_access_tokens WHERE expires_at < \(date.timeIntervalSince1970)")
    }

    // MARK: Throttle counters (see ``StoreThrottleCounters``)

    /// Transaction-scoped advisory locks, one per key, taken in one order so that two
    /// transactions never wait for each other's.
    func lockThrottleKeys(_ keys: [ThrottleCounterKey]) async throws {
        for lock in Set(keys.map(\.lockID)).sorted() {
            try await self.execute("SELECT pg_advisory_xact_lock(\(lock))")
        }
    }

    func throttleTimes(_ keys: [ThrottleCounterKey], after cutoff: Date) async throws -> [ThrottleCounterKey: [ThrottleTime]] {
        guard !keys.isEmpty else { return [:] }
        let counters = Array(Set(keys.map(\.counter.rawValue)))
        let subjects = Array(Set(keys.map(\.subject) + [ThrottleCounterKey.overflowSubject]))
        var times: [ThrottleCounterKey: [ThrottleTime]] = [:]
        // One round trip for every key of a login.
        for row in try await self.execute(
            """
            SELECT counter, subject, counted_at, held_until FROM throttle_times
            WHERE counter = ANY (\(counters)) AND subject = ANY (\(subjects))
            AND counted_at > \(cutoff.timeIntervalSince1970) ORDER BY counted_at, id
            """)
        {
            let row = Row(row)
            guard let counter = ThrottleCounter(rawValue: try row.string("counter")) else { continue }
            times[ThrottleCounterKey(counter: counter, subject: try row.string("subject")), default: []]
                .append(ThrottleTime(countedAt: try row.date("counted_at"), heldUntil: try row.optionalDate("held_until")))
        }
        return ThrottleCounterKey.counted(keys, from: times)
    }

    @discardableResult
    func recordThrottleTime(
        _ keys: [ThrottleCounterKey], at now: Date, cutoff: Date, maximumKeys: Int?, heldUntil: Date?
    ) async throws -> [Int64] {
        let overflow = ThrottleCounterKey.overflowSubject
        let cutoff = cutoff.timeIntervalSince1970
        var ids: [Int64] = []
        for key in keys {
            let counter = key.counter.rawValue
            var subject = key.subject
            try await self.execute(
                """
                DELETE FROM throttle_times
                WHERE counter = \(counter) AND subject = \(subject) AND counted_at <= \(cutoff)
                """)
            let hasOwn = try await self.exists(
                "SELECT 1 FROM throttle_times WHERE counter = \(counter) AND subject = \(subject) LIMIT 1")
            if !hasOwn && !key.isOverflow {
                // A new key: the counter forgets what left the window (only now, so that keys
                // counting at once do not all delete the same rows), then finds it a place.
                try await self.execute(
                    "DELETE FROM throttle_times WHERE counter = \(counter) AND counted_at <= \(cutoff)")
                if let maximumKeys {
                    let tracked = try await self.execute(
                        """
                        SELECT COUNT(DISTINCT subject) AS tracked FROM throttle_times
                        WHERE counter = \(counter) AND subject <> \(overflow)
                        """
                    ).first.map { try Row($0).int64("tracked") } ?? 0
                    if tracked >= Int64(maximumKeys) {
                        subject = overflow
                    } else {
                        // Any of the overflow's failures may have been this key's (a time still
                        // held belongs to its attempt, which settles it where it is).
                        try await self.execute(
                            """
                            INSERT INTO throttle_times (counter, subject, counted_at)
                            SELECT counter, \(subject), counted_at FROM throttle_times
                            WHERE counter = \(counter) AND subject = \(overflow)
                            AND (held_until IS NULL OR held_until <= \(now.timeIntervalSince1970))
                            """)
                    }
                }
            }
            let inserted = try await self.execute(
                """
                INSERT INTO throttle_times (counter, subject, counted_at, held_until)
                VALUES (\(counter), \(subject), \(now.timeIntervalSince1970), \(heldUntil?.timeIntervalSince1970))
                RETURNING id
                """)
            guard let row = inserted.first else { throw StoreError.engine("throttle_times: INSERT returned no id") }
            ids.append(try Row(row).int64("id"))
        }
        return ids
    }

    func deleteThrottleTimes(ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        try await self.execute("DELETE FROM throttle_times WHERE id = ANY (\(ids))")
    }

    func pruneThrottleTimes(counters: [ThrottleCounter], before date: Date, limit: Int) async throws -> Int {
        var deleted = 0
        for counter in counters where deleted < limit {
            deleted += try await self.execute(
                """
                DELETE FROM throttle_times WHERE id IN (
                    SELECT id FROM throttle_times
                    WHERE counter = \(counter.rawValue) AND counted_at <= \(date.timeIntervalSince1970) LIMIT \(Int64(limit - deleted))
                ) RETURNING id
                """
            ).count
        }
        return deleted
    }

    func forgetThrottleKey(_ key: ThrottleCounterKey) async throws {
        try await self.execute("DELETE FROM throttle_times WHERE counter = \(key.counter.rawValue) AND subject = \(key.subject)")
    }

    // MARK: Pruning

    /// The statements of ``pruneStorage(_:limit:)``, in SQLite's order and with its bounds: each
    /// deletes by primary key from a bounded SELECT and counts its rows with RETURNING.
    func pruneStorage(_ cutoffs: PruneCutoffs, limit: Int) async throws -> PrunedRows {
        var removed = PrunedRows()
        var room = Int64(max(0, limit))
        func delete(_ query: (_ cutoff: Double, _ room: Int64) -> PostgresQuery, _ cutoff: Date) async throws -> Int {
            guard room > 0 else { return 0 }
            let deleted = try await self.execute(query(cutoff.timeIntervalSince1970, room)).count
            room -= Int64(deleted)
            return deleted
        }
        // A revoked session refuses its refresh tokens before looking at them; an expired one
        // refuses them all the same.
        removed.refreshTokens += try await delete(
            { cutoff, room in
                """
                DELETE FROM refresh_tokens WHERE token_hash IN (
                    SELECT token_hash FROM refresh_tokens WHERE family_id IN (
                        SELECT id FROM refresh_families WHERE expires_at < \(cutoff)
                        UNION ALL SELECT id FROM refresh_families WHERE revoked_at IS NOT NULL
                    ) LIMIT \(room)
                ) RETURNING 1
                """
            }, cutoffs.sessionsExpiredBefore)
        removed.refreshTokens += try await delete(
            { cutoff, room in
                """
                DELETE FROM refresh_tokens WHERE token_hash IN (
                    SELECT token_hash FROM refresh_tokens WHERE used_at IS NULL AND expires_at < \(cutoff) LIMIT \(room)
                ) RETURNING 1
                """
            }, cutoffs.unusedRefreshTokensExpiredBefore)
        // Only sessions without tokens left: the cascade then deletes nothing, and the batch
        // stays within its limit.
        removed.sessions += try await delete(
            { cutoff, room in
                """
                DELETE FROM refresh_families WHERE id IN (
                    SELECT f.id FROM refresh_families AS f
                    WHERE f.expires_at < \(cutoff) AND NOT EXISTS (SELECT 1 FROM refresh_tokens AS t WHERE t.family_id = f.id)
                    LIMIT \(room)
                ) RETURNING 1
                """
            }, cutoffs.sessionsExpiredBefore)
        removed.revokedAccessTokens += try await delete(
            { cutoff, room in
                """
                DELETE FROM revoked_access_tokens WHERE jti IN (
                    SELECT jti FROM revoked_access_tokens WHERE expires_at < \(cutoff) LIMIT \(room)
                ) RETURNING 1
                """
            }, cutoffs.revocationsExpiredBefore)
        // Used or not: a used invitation's row has done its work, and the audit log names its user.
        removed.invitations += try await delete(
            { cutoff, room in
                """
                DELETE FROM portal_invites WHERE id IN (
                    SELECT id FROM portal_invites WHERE expires_at < \(cutoff) LIMIT \(room)
                ) RETURNING 1
                """
            }, cutoffs.sessionsExpiredBefore)
        return removed
    }

    // MARK: Server secrets

    func serverSecret(named name: String) async throws -> [UInt8]? {
        try await self.execute("SELECT value FROM server_secrets WHERE name = \(name)")
            .first.map { try Row($0).bytes("value") }
    }

    func insertServerSecretIfAbsent(named name: String, value: [UInt8]) async throws -> [UInt8] {
        try await self.execute(
            "INSERT INTO server_secrets (name, value) VALUES (\(name), \(ByteBuffer(bytes: value))) ON CONFLICT (name) DO NOTHING")
        guard let stored = try await self.serverSecret(named: name) else {
            throw StoreError.engine("server secret \(name) vanished after insertion")
        }
        return stored
    }

    func recordSignedLifetime(kid: String, lifetime: Int) async throws {
        try await self.execute(
            """
            INSERT INTO signing_key_lifetimes (kid, longest_lifetime) VALUES (\(kid), \(Int64(max(0, lifetime))))
            ON CONFLICT (kid) DO UPDATE
            SET longest_lifetime = GREATEST(signing_key_lifetimes.longest_lifetime, excluded.longest_lifetime)
            """)
    }

    func longestSignedLifetimes(kids: [String]) async throws -> [String: Int] {
        guard !kids.isEmpty else { return [:] }
        var longest: [String: Int] = [:]
        for row in try await self.execute(
            "SELECT kid, longest_lifetime FROM signing_key_lifetimes WHERE kid = ANY (\(kids))")
        {
            let row = Row(row)
            longest[try row.string("kid")] = Int(try row.int64("longest_lifetime"))
        }
        return longest
    }

    // MARK: Key ring (see ``DatabaseKeyRing``)

    func storedKeyRing() async throws -> StoredKeyRing? {
        try await self.execute("SELECT version, document FROM key_ring WHERE id = 1").first.map {
            let row = Row($0)
            return StoredKeyRing(version: Int(try row.int64("version")), document: try row.bytes("document"))
        }
    }

    func replaceStoredKeyRing(_ ring: StoredKeyRing, expectedVersion: Int?) async throws -> Bool {
        let document = ByteBuffer(bytes: ring.document)
        guard let expectedVersion else {
            return try await !self.execute(
                """
                INSERT INTO key_ring (id, version, document) VALUES (1, \(Int64(ring.version)), \(document))
                ON CONFLICT (id) DO NOTHING RETURNING id
                """
            ).isEmpty
        }
        return try await !self.execute(
            """
            UPDATE key_ring SET version = \(Int64(ring.version)), document = \(document)
            WHERE id = 1 AND version = \(Int64(expectedVersion)) RETURNING id
            """
        ).isEmpty
    }
}

/// Typed access to the columns of a result row. A missing column or a value of the wrong type is
/// an engine failure (the schema and the code disagree); the message names the column, never
/// the value.
struct Row {
    private let cells: PostgresRandomAccessRow
    /// Prepended to every column name: one table's columns in a join (``table(_:)``).
    private let prefix: String

    init(_ row: PostgresRow) {
        self.init(cells: row.makeRandomAccess(), prefix: "")
    }

    private init(cells: PostgresRandomAccessRow, prefix: String) {
        self.cells = cells
        self.prefix = prefix
    }

    /// The columns of the row named `prefix` + name, read by their names without it.
    func table(_ prefix: String) -> Row { Row(cells: self.cells, prefix: prefix) }

    private func decode<T: PostgresDecodable>(_ name: String, as type: T.Type) throws -> T {
        let column = self.prefix + name
        guard self.cells.contains(column) else { throw StoreError.engine("result has no column \(column)") }
        do {
            return try self.cells[column].decode(T.self)
        } catch {
            throw StoreError.engine("unexpected value type in column \(column)")
        }
    }

    func int64(_ column: String) throws -> Int64 { try self.decode(column, as: Int64.self) }
    func optionalInt64(_ column: String) throws -> Int64? { try self.decode(column, as: Int64?.self) }
    func string(_ column: String) throws -> String { try self.decode(column, as: String.self) }
    func optionalString(_ column: String) throws -> String? { try self.decode(column, as: String?.self) }
    func bool(_ column: String) throws -> Bool { try self.decode(column, as: Bool.self) }
    func date(_ column: String) throws -> Date { Date(timeIntervalSince1970: try self.decode(column, as: Double.self)) }
    func optionalDate(_ column: String) throws -> Date? {
        try self.decode(column, as: Double?.self).map(Date.init(timeIntervalSince1970:))
    }
    func bytes(_ column: String) throws -> [UInt8] {
        Array(try self.decode(column, as: ByteBuffer.self).readableBytesView)
    }
    func stringList(_ column: String) throws -> [String] { try self.decode(column, as: [String].self) }
    func optionalStringList(_ column: String) throws -> [String]? { try self.decode(column, as: [String]?.self) }
}

/// The connection of a statement closed (or hit the client-side deadline) before the statement
/// completed: a lost connection, as ``PostgresErrors/isConnectionLoss(_:)`` says.
struct ConnectionClosedUnderStatement: Error {}
