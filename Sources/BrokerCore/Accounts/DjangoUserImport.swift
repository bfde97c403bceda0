import BrokerCrypto
import Foundation

/// Brings the accounts of the system we replace across from Django's
/// `manage.py dumpdata auth.user` JSON. Hashes are kept as they are (they are upgraded to
/// argon2id at the next successful login); inactive users arrive disabled; usernames that exist
/// are skipped. The whole file is checked before anything is written, and written in one
/// transaction: a malformed file changes nothing.
public struct DjangoUserImport: Sendable {
    public struct Report: Sendable, Equatable {
        public var imported: [String] = []
        public var skipped: [Entry] = []
        public var rejected: [Entry] = []
    }

    /// A username (or a record's position when it has none) and the reason.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var reason: String
    }

    struct Candidate {
        var username: String
        var passwordHash: String?
        var isActive: Bool
        var joined: Date?
        var primaryKey: Int64?
    }

    public let store: any Store
    public let clock: any WallClock

    public init(store: any Store, clock: any WallClock) {
        self.store = store
        self.clock = clock
    }

    public func run(_ data: Data) async throws -> Report {
        var report = Report()
        let candidates = try parse(data, report: &report)
        let now = clock.now()
        let outcome = try await store.transaction { [report] tx in
            var report = report
            for candidate in candidates {
                if try await tx.user(named: candidate.username) != nil {
                    report.skipped.append(Entry(name: candidate.username, reason: "a user with this name exists"))
                    continue
                }
                // Keep Django's primary key as the user id when it is free: it is the `user_id`
                // claim gateways and nodes have seen so far.
                var preferredID: Int64?
                if let key = candidate.primaryKey, key > 0, try await tx.user(id: key) == nil {
                    preferredID = key
                }
                // Django's spelling is kept (it is the `sub` gateways know); the store compares
                // its key and refuses one that reads like an existing name.
                do {
                    _ = try await tx.insertUser(
                        NewUser(
                            username: candidate.username, passwordHash: candidate.passwordHash,
                            isActive: candidate.isActive, createdAt: candidate.joined ?? now, preferredID: preferredID))
                } catch StoreError.duplicate {
                    report.skipped.append(
                        Entry(name: candidate.username, reason: "a user whose name reads the same exists"))
                    continue
                }
                report.imported.append(candidate.username)
            }
            return report
        }
        return outcome
    }

    func parse(_ data: Data, report: inout Report) throws -> [Candidate] {
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw BrokerError(.invalidRequest, "the file is not valid JSON; nothing was imported")
        }
        guard let records = json as? [Any] else {
            throw BrokerError(.invalidRequest, "expected a JSON array of auth.user records; nothing was imported")
        }
        var candidates: [Candidate] = []
        var seen: Set<String> = []
        for (index, element) in records.enumerated() {
            let position = "record \(index + 1)"
            guard let record = element as? [String: Any], let fields = record["fields"] as? [String: Any] else {
                throw BrokerError(.invalidRequest, "\(position) is not a dumpdata record with fields; nothing was imported")
            }
            guard (record["model"] as? String) == "auth.user" else {
                report.rejected.append(Entry(name: position, reason: "model is not auth.user"))
                continue
            }
            guard let username = fields["username"] as? String else {
                report.rejected.append(Entry(name: position, reason: "no username"))
                continue
            }
            let name: AccountName
            do {
                name = try NamePolicy.validateUsername(username)
            } catch let error as BrokerError {
                report.rejected.append(Entry(name: position, reason: error.detail))
                continue
            }
            let password = fields["password"] as? String ?? ""
            var hash: String?
            if password.isEmpty || password.hasPrefix("!") {
                hash = nil  // Django's unusable password: the account cannot log in with one.
            } else if PasswordHasher.isSupportedFormat(password) {
                hash = password
            } else {
                report.rejected.append(Entry(name: username, reason: "unsupported password hash format"))
                continue
            }
            guard seen.insert(name.key).inserted else {
                report.skipped.append(Entry(name: username, reason: "appears more than once in the file"))
                continue
            }
            let active = (fields["is_active"] as? Bool) ?? true
            candidates.append(
                Candidate(
                    username: username, passwordHash: hash, isActive: active,
                    joined: (fields["date_joined"] as? String).flatMap(Self.parseDjangoDate),
                    primaryKey: (record["pk"] as? NSNumber)?.int64Value))
        }
        return candidates
    }

    static func parseDjangoDate(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}
