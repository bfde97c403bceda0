/// The limits a `JWKSCache` works within. The defaults suit a gateway in front of the broker,
/// which publishes its JWKS with `max-age=300` and keys well before they sign.
///
/// ```swift
/// var configuration = JWKSCacheConfiguration()
/// configuration.refetchInterval = 10
/// let cache = JWKSCache(source: source, configuration: configuration)
/// ```
public struct JWKSCacheConfiguration: Sendable, Equatable {
    /// Floor on the server's `max-age`, in seconds: a `max-age=0` or `no-cache` must not turn
    /// every request into a fetch.
    public var minimumMaxAge: Int
    /// Ceiling on the server's `max-age`, in seconds: a misconfigured year-long `max-age` must
    /// not hide a withdrawn key for a year.
    public var maximumMaxAge: Int
    /// Freshness when the server sends no `max-age`.
    public var defaultMaxAge: Int
    /// Seconds before a `kid` that caused a fetch, and was still absent from its answer (or
    /// that a new document withdrew), may cause another; also the wait before retrying a failed
    /// fetch. Anyone can send tokens with made-up `kid`s; without this limit each would cost the
    /// broker a request.
    public var refetchInterval: Int
    /// At most this many fetches caused by unknown `kid`s within any `refetchInterval`, whatever
    /// the kids: the ceiling that a flood of invented kids (each new to the per-kid rule) meets.
    /// Several, not one, so that a token of a withdrawn key cannot use up the fetch that a
    /// token of a just-published key needs.
    public var maximumUnknownKeyFetches: Int
    /// Documents larger than this many bytes are refused whole.
    public var maximumDocumentSize: Int
    /// Once the document is stale, answer known keys from it while the refetch runs in the
    /// background (what a gateway wants: a slow or down broker never delays a request), rather
    /// than waiting for the refetch (stricter freshness; the default of the library).
    public var serveStaleWhileRevalidating: Bool

    public init(
        minimumMaxAge: Int = 10, maximumMaxAge: Int = 3600, defaultMaxAge: Int = 300, refetchInterval: Int = 30,
        maximumDocumentSize: Int = 256 * 1024, serveStaleWhileRevalidating: Bool = false, maximumUnknownKeyFetches: Int = 4
    ) {
        self.maximumUnknownKeyFetches = maximumUnknownKeyFetches
        self.serveStaleWhileRevalidating = serveStaleWhileRevalidating
        self.minimumMaxAge = minimumMaxAge
        self.maximumMaxAge = maximumMaxAge
        self.defaultMaxAge = defaultMaxAge
        self.refetchInterval = refetchInterval
        self.maximumDocumentSize = maximumDocumentSize
    }

    /// How long a document stays fresh, given the `max-age` it came with.
    func freshness(maxAge: Int?) -> Int {
        min(max(maxAge ?? defaultMaxAge, minimumMaxAge), max(maximumMaxAge, minimumMaxAge))
    }
}
