import BrokerCore

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
        case let error as SQLiteFailure:
            return StoreError.engine(error.description)
        default:
            return StoreError.engine(String(describing: type(of: error)))
        }
    }
}
