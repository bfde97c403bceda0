#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The recent audit lines a global admin reads at the portal's `/admin/audit`: this replica's
/// audit log (`audit_log`), newest first, through the reader `broker audit` uses.
public struct AuditBrowsing: Sendable {
    public let path: String
    /// The most lines one page shows.
    public static let maximumLimit = 200

    public init(path: String) {
        self.path = path
    }

    /// - Throws: 403 unless `actor` is a global admin.
    public func recent(_ filter: AuditFilter, limit: Int, by actor: AdministrativeActor) async throws -> [AuditEvent] {
        try actor.requireGlobalAdmin("read the audit log")
        do {
            let found = try await AuditReader(path: path).lastMatches(filter, limit: min(max(1, limit), Self.maximumLimit))
            return found.records.map(\.event).reversed()
        } catch let error as AuditFileError where error.errno == ENOENT {
            return []  // nothing was recorded yet
        }
    }
}
