import BrokerCore
import NIOPosix
import SQLiteNIO

extension SQLiteError {
    /// A UNIQUE or PRIMARY KEY constraint failed.
    var isUniquenessViolation: Bool {
        self.reason == .constraintUniqueFailed || self.reason == .constraintPrimaryKeyFailed
    }

    /// A FOREIGN KEY constraint failed: a referenced row does not exist.
    var isForeignKeyViolation: Bool {
        self.reason == .constraintForeignKeyFailed
    }

    /// `ROLLBACK` found no transaction: SQLite had already rolled it back (after some I/O, disk
    /// full or out-of-memory errors it does so by itself).
    var isNoActiveTransaction: Bool {
        self.message.contains("no transaction is active")
    }
}

enum SQLiteErrors {
    /// Translates an error of the engine into ``StoreError``. Errors the store already speaks
    /// (``StoreError``, `CancellationError`) pass through.
    ///
    /// SQLite's messages name tables, columns and constraints, never bound values, so they are
    /// safe to pass on: no password hash or secret can leak through them.
    static func storeError(_ error: any Error) -> any Error {
        switch error {
        case is StoreError, is CancellationError:
            return error
        case let error as SQLiteError:
            return StoreError.engine("\(error.reason): \(error.message)")
        case is NIOThreadPoolError.ThreadPoolInactive:
            return StoreError.engine("store is closed")
        default:
            return StoreError.engine(String(describing: type(of: error)))
        }
    }
}
