import BrokerCore
import Foundation
import PostgresNIO

/// SQLSTATE codes the store acts on (PostgreSQL, Appendix A).
enum SQLState {
    static let uniqueViolation = "23505"
    static let foreignKeyViolation = "23503"
    static let serializationFailure = "40001"
    static let deadlockDetected = "40P01"
    static let readOnlyTransaction = "25006"

    /// The transaction lost a race with concurrent ones: running it again may succeed.
    static func isConflict(_ state: String?) -> Bool {
        state == serializationFailure || state == deadlockDetected
    }

    /// The server cannot serve now (timeouts, shutdown, overload, lost connections): 503.
    static func isUnavailable(_ state: String) -> Bool {
        state.hasPrefix("08")  // connection exceptions
            || state == "57014"  // query_canceled: statement_timeout
            || state == "55P03"  // lock_not_available
            || state.hasPrefix("57P")  // admin/crash shutdown, cannot connect now
            || state.hasPrefix("53")  // insufficient resources: too many connections, disk full
    }
}

extension PSQLError {
    var sqlState: String? { self.serverInfo?[.sqlState] }
    var constraintName: String { self.serverInfo?[.constraintName] ?? "" }
}

enum PostgresErrors {
    /// Whether `error` says the connection is gone (the server ended it: shutdown, a terminated
    /// backend, a failover; or the socket closed), as opposed to a refusal of the statement.
    static func isConnectionLoss(_ error: any Error) -> Bool {
        if error is ConnectionClosedUnderStatement { return true }
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .server:
            guard let state = error.sqlState else { return false }
            return state.hasPrefix("08") || state == "57P01" || state == "57P02" || state == "57P03"
        case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection:
            return true
        default:
            return false
        }
    }

    /// Translates an error of postgres-nio, NIO or the pool into ``StoreError``. Errors the store
    /// already speaks pass through.
    ///
    /// Only the server's primary message is passed on (it names tables, columns and
    /// constraints); its detail, which can quote a row's values, is not.
    static func storeError(_ error: any Error) -> any Error {
        switch error {
        case is StoreError, is CancellationError, is SerializationConflict:
            return error
        case is ConnectionClosedUnderStatement:
            return StoreError.unavailable("database connection closed under a statement")
        case let error as PSQLError:
            switch error.code {
            case .server:
                let state = error.sqlState ?? "?"
                let message = error.serverInfo?[.message] ?? "error"
                if SQLState.isUnavailable(state) { return StoreError.unavailable("database: \(message) (\(state))") }
                if state == SQLState.foreignKeyViolation {
                    return StoreError.engine("FOREIGN KEY constraint failed: \(error.constraintName)")
                }
                if state == SQLState.uniqueViolation {
                    return StoreError.engine("UNIQUE constraint failed: \(error.constraintName)")
                }
                return StoreError.engine("database: \(message) (\(state))")
            case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection, .poolClosed:
                return StoreError.unavailable("database connection failed (\(error.code))")
            case .sslUnsupported:
                return StoreError.engine("the database server does not offer TLS, which database_url's sslmode requires")
            case .saslError, .unsupportedAuthMechanism, .authMechanismRequiresPassword:
                return StoreError.engine("database authentication failed (\(error.code)): check the user and password")
            default:
                return StoreError.engine("database protocol error (\(error.code))")
            }
        default:
            let type = String(describing: type(of: error))
            // The pool's own errors (shut down, circuit breaker after failed connection attempts)
            // and socket errors (refused, reset, unreachable) mean: not reachable now.
            if type.contains("ConnectionPoolError") || type.contains("IOError") || type.contains("ChannelError")
                || type.contains("NIOConnectionError")
            {
                return StoreError.unavailable("database not reachable (\(type))")
            }
            if type.contains("NIOSSL") || type.contains("BoringSSL") {
                return StoreError.engine("database TLS failed (\(error))")
            }
            return StoreError.engine(type)
        }
    }
}
