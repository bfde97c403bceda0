/// Where a `JWKSCache` gets the JWKS document: over HTTP in a gateway (`HTTPJWKSSource` in
/// BrokerGateway), from memory in tests. The cache owns every policy (freshness, refetch
/// limits, size cap, which keys to trust); a source only transfers bytes.
///
/// ```swift
/// struct FixedSource: JWKSSource {
///     let bytes: [UInt8]
///     func fetch(ifNoneMatch etag: String?) async throws -> JWKSFetchResult {
///         etag == "\"v1\"" ? .notModified(maxAge: 300) : .document(bytes, etag: "\"v1\"", maxAge: 300)
///     }
/// }
/// ```
public protocol JWKSSource: Sendable {
    /// Fetches the document, conditionally when `etag` (from the last document) is given.
    ///
    /// A source should stop reading once the body exceeds what it can reasonably hold; the cache
    /// rejects documents over its own cap anyway.
    func fetch(ifNoneMatch etag: String?) async throws -> JWKSFetchResult
}

/// What one fetch of a JWKS returned.
///
/// ```swift
/// switch try await source.fetch(ifNoneMatch: lastETag) {
/// case .notModified(let maxAge): keepCurrentKeys(for: maxAge)
/// case .document(let bytes, let etag, let maxAge): replaceKeys(bytes, etag, maxAge)
/// }
/// ```
public enum JWKSFetchResult: Sendable, Equatable {
    /// The document has not changed since the given ETag (HTTP 304). A 304 may carry a new
    /// `Cache-Control`, which renews the cached document's freshness.
    case notModified(maxAge: Int?)
    /// A new document, with its `ETag` and `Cache-Control: max-age` (seconds) when given.
    case document([UInt8], etag: String?, maxAge: Int?)
}
