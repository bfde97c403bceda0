import BrokerSync
import NIOCore

/// The open connections of one listener, shared by the event loops that serve them: admits a
/// new connection (closing the longest-waiting ones when at the cap), tracks what each is doing,
/// forgets it when it closes. Its lock is held only for the table's bookkeeping, never across
/// I/O: closing an evicted channel is asked of that channel's own event loop.
public final class ConnectionRegistry: Sendable {
    private let table: Locked<ConnectionTable<any Channel>>
    private let isExemptFromAddressCap: @Sendable (String) -> Bool

    /// - Parameter isExemptFromAddressCap: peers capped only by the total, e.g. trusted reverse
    ///   proxies, which speak for many clients.
    public init(limits: ConnectionLimits, isExemptFromAddressCap: @escaping @Sendable (String) -> Bool = { _ in false }) {
        table = Locked(ConnectionTable(maximum: limits.maximumConnections, maximumPerAddress: limits.maximumConnectionsPerAddress))
        self.isExemptFromAddressCap = isExemptFromAddressCap
    }

    public var count: Int { table.withLock { $0.count } }

    /// Admits `channel`, or says why not. The channels evicted to make room are closed here.
    func admit(_ channel: any Channel, at now: NIODeadline) -> ConnectionTable<any Channel>.Admission {
        let address = channel.remoteAddress?.ipAddress
        let exempt = address.map(isExemptFromAddressCap) ?? false
        let admission = table.withLock { $0.admit(channel, address: address, exemptFromAddressCap: exempt, at: now) }
        if case .admitted(_, let evicted) = admission {
            for victim in evicted { victim.close(mode: .all, promise: nil) }
        }
        return admission
    }

    func update(_ id: ConnectionTable<any Channel>.ID, to activity: ConnectionTable<any Channel>.Activity) {
        table.withLock { $0.update(id, to: activity) }
    }

    func forget(_ id: ConnectionTable<any Channel>.ID) {
        table.withLock { _ = $0.forget(id) }
    }
}
