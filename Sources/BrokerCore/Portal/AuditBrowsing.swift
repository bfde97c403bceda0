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

    /// The conditions of the audit page's form, as typed (empty: any).
    public struct Query: Sendable, Equatable {
        public var since = ""
        public var actor = ""
        public var organization = ""
        public var action = ""
        public var session = ""

        public init(since: String = "", actor: String = "", organization: String = "", action: String = "", session: String = "") {
            self.since = since
            self.actor = actor
            self.organization = organization
            self.action = action
            self.session = session
        }
    }

    /// The lines matching a typed query; `since` is what `broker audit --since` takes.
    /// - Throws: 403 unless `actor` is a global admin (before anything else); 400 for a `since`
    ///   that is neither an age nor a date.
    public func recent(_ query: Query, now: Date, limit: Int, by actor: AdministrativeActor) async throws -> [AuditEvent] {
        try actor.requireGlobalAdmin("read the audit log")
        var filter = AuditFilter()
        if !query.since.isEmpty {
            guard let since = AuditFilter.since(query.since, now: now) else {
                throw BrokerError(.invalidRequest, "since must be an age such as 2h or 7d, or a date such as 2026-12-01T00:00:00Z")
            }
            filter.since = since
        }
        filter.actor = query.actor.isEmpty ? nil : query.actor
        filter.organization = query.organization.isEmpty ? nil : query.organization
        filter.session = query.session.isEmpty ? nil : query.session
        filter.action = query.action.isEmpty ? nil : AuditAction(rawValue: query.action)
        return try await recent(filter, limit: limit, by: actor)
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
