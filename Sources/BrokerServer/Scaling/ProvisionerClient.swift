import AsyncHTTPClient
import BrokerCore
import BrokerCrypto
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1

/// Sends the generation-1 client's scaling calls on to the provisioner (`provisioner_url`) and
/// brings its answer back, bounded and checked: the client reads every answer as a JSON object.
///
/// One HTTP client for every call (its connections are reused), owned by whoever runs the
/// server: `broker serve` makes it at start and calls ``shutdown()`` on the way out. Redirects
/// are not followed, proxy variables of the environment are ignored, and the whole exchange,
/// connection and body included, has `provisioner_timeout` to finish.
///
/// ```swift
/// let provisioner = try ProvisionerClient(configuration: configuration)   // nil URL: no client
/// defer { Task { try await provisioner?.shutdown() } }
/// ```
public final class ProvisionerClient: Sendable {
    /// The provisioner's URL without a trailing slash; calls append their `/api/...` path.
    public let baseURL: String
    public let timeout: Duration
    private let client: HTTPClient

    /// The most the broker reads of a request body to pass on, and of an answer to pass back.
    static let maximumBodySize = JSONRequestBody.maximumSize

    /// A client for `configuration.provisionerURL`, or nil when it is empty (scaling calls are
    /// then answered 501).
    public convenience init?(configuration: BrokerConfiguration) {
        guard !configuration.provisionerURL.isEmpty else { return nil }
        self.init(url: configuration.provisionerURL, timeout: .seconds(configuration.provisionerTimeout))
    }

    /// - Parameter url: an absolute http(s) URL, perhaps with a path prefix (see
    ///   `BrokerConfiguration.validate()`).
    public init(url: String, timeout: Duration) {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        baseURL = base
        self.timeout = timeout
        let amount = TimeAmount.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: amount, read: amount), proxy: nil,
            decompression: .disabled)
        // A refused connection is a 502 at once, not retried until the timeout: the client retries.
        configuration.connectionPool.retryConnectionEstablishment = false
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Closes the client's connections; calls after this fail (502).
    public func shutdown() async throws {
        try await client.shutdown()
    }

    /// Sends `outgoing` and returns the provisioner's answer.
    /// - Throws: 504 ``ErrorCode/provisionerTimeout`` past the timeout; 502
    ///   ``ErrorCode/provisionerBadResponse`` for an answer that is not a JSON object of at most
    ///   64 KiB; 502 ``ErrorCode/provisionerUnavailable`` when it cannot be reached.
    func send(_ outgoing: ProvisionerRequest, logger: Logger) async throws -> ProvisionerResponse {
        var request = HTTPClientRequest(url: try target(outgoing.pathAndQuery))
        request.method = HTTPMethod(rawValue: outgoing.method.rawValue)
        request.headers = outgoing.headers
        if let body = outgoing.body { request.body = .bytes(body) }
        let deadline = NIODeadline.now() + .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)
        do {
            return try await Self.within(timeout) { [client, request] in
                let response = try await client.execute(request, deadline: deadline)
                return try await ProvisionerResponse.read(response)
            }
        } catch let error as BrokerError {
            logger.warning("provisioner call failed", metadata: ["path": "\(outgoing.path)", "error": "\(error)"])
            throw error
        } catch {
            // The transport's own words for the operator; the client gets the broker's.
            logger.warning(
                "provisioner call failed", metadata: ["path": "\(outgoing.path)", "error": "\(String(reflecting: error))"])
            throw Self.brokerError(for: error)
        }
    }

    /// The URL a call goes to: the provisioner's URL and the call's path and query.
    /// - Throws: 400 ``ErrorCode/invalidRequest`` for a query that makes no URL.
    func target(_ pathAndQuery: String) throws -> String {
        let url = baseURL + pathAndQuery
        guard URL(string: url) != nil else { throw BrokerError(.invalidRequest, "the request's query cannot be passed on") }
        return url
    }

    /// A client error in the catalogue's terms.
    static func brokerError(for error: any Error) -> BrokerError {
        switch error {
        case is Expired:
            return BrokerError(.provisionerTimeout, "the provisioner did not answer in time")
        case let error as HTTPClientError
        where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout:
            return BrokerError(.provisionerTimeout, "the provisioner did not answer in time")
        case is NIOTooManyBytesError:
            return BrokerError(.provisionerBadResponse, "the provisioner's answer exceeds \(maximumBodySize) bytes")
        case is HTTPParserError:
            return BrokerError(.provisionerBadResponse, "the provisioner's answer is not HTTP")
        default:
            return BrokerError(.provisionerUnavailable, "the provisioner cannot be reached")
        }
    }

    /// The deadline passed.
    struct Expired: Error {}

    /// Runs `work` for at most `timeout`: the client's own deadline covers the answer's head, and
    /// a body that trickles in a byte at a time would otherwise hold the request for as long as
    /// it lasts. Past it, `work` is cancelled (the client then abandons the request).
    static func within<T: Sendable>(_ timeout: Duration, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await work() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw Expired()
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw Expired() }
            return first
        }
    }
}

/// A scaling call as it goes to the provisioner: the call's own path, the client's query and
/// body, and headers the provisioner can trust (see ``headers(from:identity:origin:requestID:)``).
struct ProvisionerRequest: Sendable {
    var method: HTTPRequest.Method
    var path: String
    var query: String?
    var headers: HTTPHeaders
    var body: ByteBuffer?

    var pathAndQuery: String { Self.pathAndQuery(path, query) }

    static func pathAndQuery(_ path: String, _ query: String?) -> String { query.map { path + "?" + $0 } ?? path }

    /// Where the call came from, for `X-Forwarded-For`, `-Proto` and `-Host`.
    struct Origin: Sendable, Equatable {
        /// The client's address as the broker determines it (`trusted_proxies`).
        var clientIP: String?
        /// `https` when a trusted proxy in front says so; the broker itself speaks `http`.
        var scheme: String
        /// The `Host` the client addressed (`ps.<domain>`).
        var host: String?
    }

    /// Request headers that must not reach the provisioner: hop-by-hop headers (RFC 9110 section
    /// 7.6.1), the client's credentials (the provisioner trusts the broker, not the token, and
    /// a portal cookie is nobody else's business), the framing the HTTP client sets itself, and
    /// whatever says who or where the client is, which only the broker may say.
    static let withheld: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade", "authorization", "cookie", "host", "content-length", "expect", "forwarded",
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-real-ip", "x-request-id",
    ]

    /// The client's headers without the ones above, those its `Connection` header names and the
    /// `x-sliderule-*` names only a gateway may set; then the identity headers a gateway adds,
    /// the origin and the broker's request id.
    static func headers(from incoming: HTTPFields, identity: ScalingIdentity, origin: Origin, requestID: String) throws
        -> HTTPHeaders
    {
        let named = incoming[values: .connection].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        var outgoing = HTTPHeaders()
        for field in incoming {
            let name = field.name.canonicalName
            if withheld.contains(name) || named.contains(name) || GatewayHeaders.isReserved(name) { continue }
            outgoing.add(name: field.name.rawName, value: field.value)
        }
        guard let identityValues = IdentityHeaders.values(account: identity.account, roles: identity.roles) else {
            throw BrokerError(.forbidden, "this account's name cannot be passed on in a header")
        }
        outgoing.add(name: GatewayHeaders.account, value: identityValues.account)
        outgoing.add(name: GatewayHeaders.orgRoles, value: identityValues.roles)
        if let clientIP = origin.clientIP { outgoing.add(name: "X-Forwarded-For", value: clientIP) }
        outgoing.add(name: "X-Forwarded-Proto", value: origin.scheme)
        if let host = origin.host, isHeaderSafe(host) { outgoing.add(name: "X-Forwarded-Host", value: host) }
        if isHeaderSafe(requestID) { outgoing.add(name: "X-Request-ID", value: requestID) }
        return outgoing
    }

    /// Visible ASCII only: what the broker writes of its own stays within what every parser reads.
    static func isHeaderSafe(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.count <= 255 && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}

/// The provisioner's answer, as the broker passes it back: its status, its JSON `Content-Type`
/// and its body, a JSON object of at most 64 KiB.
struct ProvisionerResponse: ProvisionerAnswer {
    var statusCode: Int
    var contentType: String
    var body: ByteBuffer

    static func read(_ response: HTTPClientResponse) async throws -> ProvisionerResponse {
        let limit = ProvisionerClient.maximumBodySize
        let status = Int(response.status.code)
        guard (200...599).contains(status) else {
            throw BrokerError(.provisionerBadResponse, "the provisioner answered with HTTP status \(status)")
        }
        if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > limit {
            throw BrokerError(.provisionerBadResponse, "the provisioner's answer exceeds \(limit) bytes")
        }
        let body = try await response.body.collect(upTo: limit)
        let contentType = response.headers.first(name: "content-type") ?? ""
        // Printable ASCII: it goes back to the client as it is.
        guard isJSON(contentType), contentType.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw BrokerError(
                .provisionerBadResponse, "the provisioner answered HTTP \(status) without a JSON body, which clients cannot read")
        }
        guard case .object = try? JSONParser.parse(Array(body.readableBytesView), maxDepth: 32) else {
            throw BrokerError(.provisionerBadResponse, "the provisioner answered HTTP \(status) with a body that is not a JSON object")
        }
        return ProvisionerResponse(statusCode: status, contentType: contentType, body: body)
    }

    /// `application/json` or a `+json` type, parameters allowed.
    static func isJSON(_ contentType: String) -> Bool {
        let essence = contentType.split(separator: ";", maxSplits: 1).first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        return essence == "application/json" || (essence.hasPrefix("application/") && essence.hasSuffix("+json"))
    }
}
