import BrokerGateway
import HTTPTypes
import HummingbirdTesting
import NIOCore

/// What HummingbirdTesting's `.live` mode gave the gateway when it was a Hummingbird
/// application: the server on a free loopback port for the length of `body`, and a keep-alive
/// client connected to it.
extension GatewayServer {
    func withLiveClient<Value: Sendable>(_ body: @escaping @Sendable (LiveClient) async throws -> Value) async throws -> Value {
        let live = try await LiveServer.start { onRunning in
            var server = self
            let previous = onServerRunning
            server.onServerRunning = { channel in
                await previous(channel)
                await onRunning(channel)
            }
            return server
        }
        let value: Value
        do {
            value = try await TestClient.withClient(host: "127.0.0.1", port: live.port, configuration: .init(timeout: .seconds(20))) {
                try await body(LiveClient(client: $0, port: live.port))
            }
        } catch {
            try? await live.stop()
            throw error
        }
        try await live.stop()
        return value
    }
}

/// A client on one kept-alive connection, with HummingbirdTesting's `execute` shape.
struct LiveClient: Sendable {
    let client: TestClient
    let port: Int?

    @discardableResult
    func execute<Return>(
        uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:],
        _ check: (LiveResponse) async throws -> Return = { $0 }
    ) async throws -> Return {
        var headers = headers
        headers[.connection] = "keep-alive"
        let response = try await client.execute(.init(uri, method: method, authority: "localhost", headers: headers))
        return try await check(LiveResponse(status: response.status, headers: response.headers, body: response.body ?? ByteBuffer()))
    }
}

/// An answer of the gateway as a test reads it.
struct LiveResponse: Sendable {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer
}
