import NIOCore

/// Which open connections there are, from which address, and what each is doing: the policy of
/// ``ConnectionRegistry`` without its lock or its channels, so that it can be tested with
/// made-up times.
///
/// ```swift
/// var table = ConnectionTable<String>(maximum: 2, maximumPerAddress: 2)
/// _ = table.admit("a", address: "10.0.0.1", at: .uptimeNanoseconds(1))  // .admitted(id 1, evicting none)
/// _ = table.admit("b", address: "10.0.0.2", at: .uptimeNanoseconds(2))  // .admitted(id 2, evicting none)
/// _ = table.admit("c", address: "10.0.0.3", at: .uptimeNanoseconds(3))  // .admitted(id 3, evicting "a")
/// ```
public struct ConnectionTable<Handle> {
    public typealias ID = UInt64

    /// What a connection is doing, as far as the cap is concerned.
    public enum Activity: Equatable, Sendable {
        /// Waiting for a request, or for the rest of its head: new, or kept alive after an
        /// answer, since the given time. The first to go when room is needed, longest waiting first.
        case waiting(since: NIODeadline)
        /// Its request's head is in and its body is being read, since the given time. Goes only
        /// when no connection is waiting.
        case readingBody(since: NIODeadline)
        /// Its request has been read and is being answered: never closed to make room.
        case answering
    }

    public enum Refusal: String, Sendable, CaseIterable {
        /// The peer address already holds its share of connections.
        case perAddress = "per_address"
        /// Every connection is answering a request: none can be closed to make room.
        case capacity
    }

    public enum Admission {
        /// Open it; close the `evicted` ones (already forgotten by the table) to make room.
        case admitted(ID, evicted: [Handle])
        case refused(Refusal)
    }

    struct Entry {
        var handle: Handle
        var address: String?
        var activity: Activity
    }

    public let maximum: Int
    public let maximumPerAddress: Int
    private(set) var entries: [ID: Entry] = [:]
    private var countByAddress: [String: Int] = [:]
    private var lastID: ID = 0

    public init(maximum: Int, maximumPerAddress: Int) {
        self.maximum = maximum
        self.maximumPerAddress = maximumPerAddress
    }

    public var count: Int { entries.count }

    public func count(from address: String) -> Int { countByAddress[address] ?? 0 }

    /// Admits a new connection from `address` (nil: unknown, never capped per address), waiting
    /// for its first request since `now`. `exemptFromAddressCap`: a peer that speaks for many
    /// clients (a trusted reverse proxy) is capped only by the total.
    public mutating func admit(
        _ handle: Handle, address: String?, exemptFromAddressCap: Bool = false, at now: NIODeadline
    ) -> Admission {
        if let address, !exemptFromAddressCap, count(from: address) >= maximumPerAddress {
            return .refused(.perAddress)
        }
        var evicted: [Handle] = []
        while entries.count >= maximum {
            guard let victim = evictionCandidate() else { return .refused(.capacity) }
            evicted.append(forget(victim)!)
        }
        lastID += 1
        entries[lastID] = Entry(handle: handle, address: address, activity: .waiting(since: now))
        if let address { countByAddress[address, default: 0] += 1 }
        return .admitted(lastID, evicted: evicted)
    }

    public mutating func update(_ id: ID, to activity: Activity) {
        entries[id]?.activity = activity
    }

    /// Forgets a closed connection; nil when it was not (or no longer) here.
    @discardableResult
    public mutating func forget(_ id: ID) -> Handle? {
        guard let entry = entries.removeValue(forKey: id) else { return nil }
        if let address = entry.address {
            let left = (countByAddress[address] ?? 1) - 1
            countByAddress[address] = left > 0 ? left : nil
        }
        return entry.handle
    }

    /// The connection that has waited longest for a request; failing that, the one that has
    /// been reading its body longest; never one being answered. A linear scan: it runs only at
    /// the cap, over at most `maximum` entries.
    func evictionCandidate() -> ID? {
        var oldestWaiting: (ID, NIODeadline)?
        var oldestReading: (ID, NIODeadline)?
        for (id, entry) in entries {
            switch entry.activity {
            case .waiting(let since):
                if oldestWaiting.map({ (since, id) < ($0.1, $0.0) }) ?? true { oldestWaiting = (id, since) }
            case .readingBody(let since):
                if oldestReading.map({ (since, id) < ($0.1, $0.0) }) ?? true { oldestReading = (id, since) }
            case .answering:
                break
            }
        }
        return (oldestWaiting ?? oldestReading)?.0
    }
}

extension ConnectionTable: Sendable where Handle: Sendable {}
extension ConnectionTable.Admission: Sendable where Handle: Sendable {}
extension ConnectionTable.Entry: Sendable where Handle: Sendable {}
