import AsyncHTTPClient
import BrokerValidator
import NIOCore
import NIOHTTP1

/// Fetches the broker's JWKS over HTTP(S) for a `JWKSCache`: conditional GETs with
/// `If-None-Match`, a deadline on the whole exchange, a cap on the body, and the response's
/// `ETag` and `Cache-Control: max-age` handed to the cache.
///
/// The URL is the one the operator configured, and nothing else: redirects are not followed,
/// and no URL from a token is ever fetched.
///
/// The source owns its HTTP client: call `shutdown()` once the cache using it is done.
///
/// ```swift
/// let source = HTTPJWKSSource(url: "https://login.example.org/.well-known/jwks.json")
/// let cache = JWKSCache(source: source)
/// // ...
/// try await source.shutdown()
/// ```
public struct HTTPJWKSSource: JWKSSource {
    public let url: String
    /// The deadline for one fetch, connection and body included.
    public let timeout: TimeAmount
    /// Bodies larger than this are abandoned while reading, before the cache's own check.
    public let maximumSize: Int
    private let client: HTTPClient

    public init(
        url: String, timeout: TimeAmount = .seconds(5), connectTimeout: TimeAmount = .seconds(2),
        maximumSize: Int = 256 * 1024
    ) {
        self.url = url
        self.timeout = timeout
        self.maximumSize = maximumSize
        client = HTTPClient(
            eventLoopGroup: HTTPClient.defaultEventLoopGroup,
            configuration: HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(connect: connectTimeout, read: timeout)))
    }

    /// Closes the client's connections. Fetches after this fail.
    public func shutdown() async throws {
        try await client.shutdown()
    }

    public func fetch(ifNoneMatch etag: String?) async throws -> JWKSFetchResult {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/jwk-set+json, application/json")
        if let etag { request.headers.add(name: "If-None-Match", value: etag) }
        let response = try await client.execute(request, timeout: timeout)
        let maxAge = CacheControl.maxAge(response.headers["cache-control"])
        switch response.status.code {
        case 304:
            return .notModified(maxAge: maxAge)
        case 200:
            if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > maximumSize {
                throw HTTPJWKSSourceError("JWKS of \(length) bytes exceeds the \(maximumSize)-byte limit")
            }
            let body: ByteBuffer
            do {
                body = try await response.body.collect(upTo: maximumSize)
            } catch is NIOTooManyBytesError {
                throw HTTPJWKSSourceError("JWKS exceeds the \(maximumSize)-byte limit")
            }
            return .document(Array(body.readableBytesView), etag: response.headers.first(name: "etag"), maxAge: maxAge)
        default:
            throw HTTPJWKSSourceError("JWKS request answered HTTP \(response.status.code)")
        }
    }
}

/// A JWKS fetch that got an answer the gateway cannot use.
///
/// ```swift
/// do { _ = try await source.fetch(ifNoneMatch: nil) }
/// catch let error as HTTPJWKSSourceError { logger.warning("\(error)") }
/// ```
public struct HTTPJWKSSourceError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
