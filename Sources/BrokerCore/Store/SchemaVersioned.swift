/// A store whose tables follow numbered schema migrations (both engines share the numbers):
/// what `broker db migrate` reports once opening the store has applied what was pending.
public protocol SchemaVersioned: Sendable {
    /// The highest migration applied to the database.
    func schemaVersion() async throws -> Int
    /// The highest migration this build knows.
    static var latestSchemaVersion: Int { get }
}
