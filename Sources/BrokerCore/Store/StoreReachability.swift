extension Store {
    /// Throws unless the store answers a read. It reads through ``Store/read(_:)``, so it takes no
    /// write lock and never waits behind a writer (a CLI import holding SQLite's write lock):
    /// a health check that queued behind writes would call a busy store dead.
    public func checkReachable() async throws {
        _ = try await read { tx in try await tx.organization(id: 0) }
    }
}
