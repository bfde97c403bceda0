import BrokerSync
import Foundation
import NIOCore
import SQLiteNIO

extension SQLiteConnection {
    /// Submits one statement to the connection's thread pool and returns a future of its rows.
    ///
    /// The statement is queued synchronously, before this method returns: callers rely on that
    /// (with a one-thread pool, statements run in the order they were submitted). Unlike
    /// sqlite-nio's `async` API, the statement runs even if the calling task is cancelled, which
    /// is what `COMMIT` and `ROLLBACK` need; callers check cancellation themselves where wanted.
    func submit(_ sql: String, _ binds: [SQLiteData] = []) -> EventLoopFuture<[SQLiteRow]> {
        let buffer = RowBuffer()
        return self.query(sql, binds, logger: self.logger) { row in buffer.append(row) }
            .map { buffer.rows }
    }

    /// Runs one statement and returns its rows (see ``submit(_:_:)``).
    func rows(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        try await self.submit(sql, binds).get()
    }
}

/// Collects the rows sqlite-nio delivers one by one.
private final class RowBuffer: Sendable {
    private let storage = Locked<[SQLiteRow]>([])

    func append(_ row: SQLiteRow) {
        self.storage.withLock { $0.append(row) }
    }

    var rows: [SQLiteRow] {
        self.storage.withLock { $0 }
    }
}
