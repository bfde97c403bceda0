import BrokerCore
import BrokerSync
import Foundation
import NIOCore
import ServiceLifecycle

/// An HTTP listener that says which address it could not take: `cannot listen on
/// 127.0.0.1:8080: address already in use`, where the server library alone reports
/// `bind(descriptor:ptr:bytes:): Address already in use (errno: 98)` without saying which of
/// the broker's listeners failed.
struct NamedListener: Service {
    let listener: any Service
    /// What it serves, for the message: "" for the public listener, "metrics" for the other.
    let role: String
    let host: String
    let port: Int
    /// Set by the listener's `onServerRunning`: after that, a failure is not about listening.
    let running: Locked<Bool>

    /// Wraps the listener `make` builds, handing it the hook that records it listens.
    init(role: String = "", host: String, port: Int, make: (_ onRunning: @escaping @Sendable () -> Void) -> any Service) {
        let running = Locked(false)
        self.running = running
        self.role = role
        self.host = host
        self.port = port
        self.listener = make { running.withLock { $0 = true } }
    }

    func run() async throws {
        do {
            try await listener.run()
        } catch {
            guard !running.withLock({ $0 }) else { throw error }
            throw ListenerError(role: role, host: host, port: port, cause: error)
        }
    }
}

/// A listener that could not start, with the address it was given.
struct ListenerError: Error, CustomStringConvertible {
    var role: String
    var host: String
    var port: Int
    var cause: any Error

    var description: String {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let what = role.isEmpty ? "" : " (\(role))"
        return "cannot listen on \(address)\(what): \(reason)"
    }

    private var reason: String {
        guard let error = cause as? IOError else { return "\(cause)" }
        let text = String(cString: strerror(error.errnoCode))
        return text.prefix(1).lowercased() + text.dropFirst()
    }
}
