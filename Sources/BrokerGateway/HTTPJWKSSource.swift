import AsyncHTTPClient
import BrokerSync
import BrokerValidator
import Foundation
import NIOCore
import NIOHTTP1

/// Fetches the broker's JWKS over HTTP(S) for a `JWKSCache`: conditional GETs with
/// `If-None-Match`, a deadline on the whole exchange, a cap on the body, and the response's
/// `ETag` and `Cache-Control: max-age` handed to the cache.
///
/// The URL is the one the operator configured, and nothing else: redirects are not followed,
/// and no URL from a token is ever fetched. It must be `https`, or `http` to loopback
/// (`refusal(of:)`); a source with any other URL refuses to fetch.
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

    /// Checks that `url` may carry keys: `https`, or `http` to a loopback address only
    /// (127.0.0.0/8, `::1`, `localhost`), where nobody on the network can replace the keys in
    /// transit. Returns a reason to show the operator, or nil if the URL is acceptable.
    public static func refusal(of url: String) -> String? {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(),
            let host = parsed.host?.lowercased(), !host.isEmpty
        else { return "the JWKS URL must be an absolute http(s) URL" }
        switch scheme {
        case "https":
            return nil
        case "http":
            return isLoopback(host)
                ? nil
                : "the JWKS URL must be https: plain http is accepted only for loopback (127.0.0.0/8, ::1, localhost), got host \(LogText.escaped(host, limit: 64))"
        default:
            return "the JWKS URL must be https, got scheme \(LogText.escaped(scheme, limit: 16))"
        }
    }

    /// `localhost`, a dotted-quad 127.x.y.z or `::1`: names that never leave the machine.
    static func isLoopback(_ host: String) -> Bool {
        var host = host
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" || host == "localhost." { return true }
        var address = in6_addr()
        if inet_pton(AF_INET6, host, &address) == 1 {
            // ::1 is fifteen zero bytes and a one.
            return withUnsafeBytes(of: &address) { bytes in bytes.dropLast().allSatisfy { $0 == 0 } && bytes.last == 1 }
        }
        // Only the strict dotted quad: inet_aton would also read "127.1", "0x7f.1" or octal.
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4,
            parts.allSatisfy({ ($0 == "0" || !$0.hasPrefix("0")) && $0.count <= 3 && $0.allSatisfy(\.isASCII) && UInt8($0) != nil })
        else { return false }
        return parts[0] == "127"
    }

    public func fetch(ifNoneMatch etag: String?) async throws -> JWKSFetchResult {
        if let refusal = Self.refusal(of: url) { throw HTTPJWKSSourceError(refusal) }
        // The client's own deadline covers the answer's head only; a body that trickles a byte
        // at a time would keep the fetch, and every lookup waiting on it, alive for days.
        return try await Deadline.run(after: timeout) {
            try await self.fetchWithoutDeadline(ifNoneMatch: etag)
        }
    }

    private func fetchWithoutDeadline(ifNoneMatch etag: String?) async throws -> JWKSFetchResult {
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
            return .document(Array(body.readableBytesView), etag: Self.usableETag(response.headers.first(name: "etag")), maxAge: maxAge)
        default:
            throw HTTPJWKSSourceError("JWKS request answered HTTP \(response.status.code)")
        }
    }
}

extension HTTPJWKSSource {
    /// The ETag to send back in `If-None-Match`, or nil: one that is long or holds bytes a
    /// request header cannot carry would make every later conditional fetch fail.
    static func usableETag(_ etag: String?) -> String? {
        guard let etag, !etag.isEmpty, etag.utf8.count <= 256,
            etag.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7e })
        else { return nil }
        return etag
    }
}

/// Runs an operation with a deadline on the whole of it.
enum Deadline {
    /// The operation's result, or `HTTPJWKSSourceError` once `timeout` has passed. The
    /// operation is cancelled then, and not waited for: one that ignores cancellation cannot
    /// hold the caller.
    static func run<T: Sendable>(
        after timeout: TimeAmount, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let race = Race<T>()
        let work = Task<Void, Never> {
            do {
                race.finish(with: .success(try await operation()))
            } catch {
                race.finish(with: .failure(error))
            }
        }
        let timer = Task<Void, Never> {
            try? await Task.sleep(for: .nanoseconds(timeout.nanoseconds))
            guard !Task.isCancelled else { return }
            let seconds = Double(timeout.nanoseconds) / 1e9
            if race.finish(with: .failure(HTTPJWKSSourceError("JWKS fetch took longer than \(seconds) s"))) {
                work.cancel()
            }
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { race.wait(with: $0) }
        } onCancel: {
            race.finish(with: .failure(CancellationError()))
            work.cancel()
        }
    }

    /// The first of several outcomes, handed to one waiting continuation whichever comes first.
    private final class Race<T: Sendable>: Sendable {
        private enum State {
            case pending
            case waiting(CheckedContinuation<T, any Error>)
            case finished(Result<T, any Error>)
            case delivered
        }

        private let state = Locked(State.pending)

        /// Records `result` if it is the first; returns whether it was.
        @discardableResult
        func finish(with result: Result<T, any Error>) -> Bool {
            state.withLock { state in
                switch state {
                case .pending:
                    state = .finished(result)
                    return true
                case .waiting(let continuation):
                    state = .delivered
                    continuation.resume(with: result)
                    return true
                case .finished, .delivered:
                    return false
                }
            }
        }

        func wait(with continuation: CheckedContinuation<T, any Error>) {
            state.withLock { state in
                if case .finished(let result) = state {
                    state = .delivered
                    continuation.resume(with: result)
                } else {
                    state = .waiting(continuation)
                }
            }
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
