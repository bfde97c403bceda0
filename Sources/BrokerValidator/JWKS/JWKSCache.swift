import BrokerCrypto
import BrokerSync
import Foundation

/// The broker's published keys as a gateway last saw them, kept fresh without ever letting
/// the traffic it checks decide how often the broker is asked.
///
/// - A document is fresh for its `Cache-Control: max-age`, bounded by the configuration; the
///   first lookup after that fetches again (conditionally, with the last `ETag`). With
///   `serveStaleWhileRevalidating` it answers known keys from the set it holds while that
///   fetch runs in the background, so a slow or unreachable broker never delays a request.
/// - A `kid` not in the set causes a refetch, but at most once per `refetchInterval` (counted
///   from the start of the last fetch of any kind): a rotation's new key is picked up at once,
///   while a flood of tokens with invented `kid`s costs the broker one request per interval.
/// - Concurrent lookups that need a fetch share the one in flight.
/// - A failed fetch, or a document that cannot be used, leaves the last good set in service:
///   gateways keep validating while the broker is down. The next attempt waits
///   `refetchInterval`.
///
/// ```swift
/// let cache = JWKSCache(source: HTTPJWKSSource(url: jwksURL))   // or any JWKSSource
/// let checks = AccessTokenChecks(issuer: "https://login.example.org", leeway: 30)
/// let unverified = try checks.inspect(bearer)
/// let claims = try checks.verify(unverified, key: await cache.key(for: unverified.keyID), audience: "cluster1", now: Date())
/// ```
public actor JWKSCache {
    public nonisolated let configuration: JWKSCacheConfiguration
    private let source: any JWKSSource
    private nonisolated let clock: any WallClock
    private let onEvent: @Sendable (JWKSCacheEvent) -> Void

    private var keySet: JWKSKeySet? {
        didSet { publish() }
    }
    /// The ETag of `keySet`'s document; only sent while that set is held.
    private var etag: String?
    private var freshUntil = Date.distantPast {
        didSet { publish() }
    }
    /// A copy of the fresh set readable without entering the actor: the hot path of a gateway
    /// (a known `kid` in a fresh set) then costs no executor hop.
    private nonisolated let published = Locked<(keys: JWKSKeySet?, freshUntil: Date)>((nil, .distantPast))
    private var lastFetchStarted: Date?
    private var inFlight: Task<Void, Never>?

    public init(
        source: any JWKSSource, configuration: JWKSCacheConfiguration = JWKSCacheConfiguration(),
        clock: any WallClock = SystemWallClock(), onEvent: @escaping @Sendable (JWKSCacheEvent) -> Void = { _ in }
    ) {
        self.source = source
        self.configuration = configuration
        self.clock = clock
        self.onEvent = onEvent
    }

    /// The key published under `kid`, fetching first if the set is stale, or if `kid` is
    /// unknown and the refetch interval allows. Nil when no usable key has that `kid`.
    public func key(for kid: String) async -> PublicKey? {
        if clock.now() >= freshUntil {
            if keySet == nil || !configuration.serveStaleWhileRevalidating {
                await refresh()
            } else if inFlight == nil {
                startFetch()
            }
        }
        if let key = keySet?.key(for: kid) { return key }
        if inFlight != nil {
            await refresh()
        } else if mayRefetchForUnknownKey() {
            await refresh()
        } else {
            return nil
        }
        return keySet?.key(for: kid)
    }

    /// The key for `kid` if the held set is fresh and has it, without waiting on the actor;
    /// `nil` means "ask ``key(for:)``" (stale set, unknown `kid`, nothing loaded yet).
    public nonisolated func freshKey(for kid: String) -> PublicKey? {
        let now = clock.now()
        return published.withLock { published in
            guard now < published.freshUntil else { return nil }
            return published.keys?.key(for: kid)
        }
    }

    private func publish() {
        let snapshot = (keySet, freshUntil)
        published.withLock { $0 = snapshot }
    }

    /// Fetches now, or waits for the fetch already in flight. For start-up and for tests;
    /// lookups call it themselves when the rules above allow.
    public func refresh() async {
        if let inFlight {
            await inFlight.value
            return
        }
        await startFetch().value
    }

    @discardableResult
    private func startFetch() -> Task<Void, Never> {
        let fetch = Task { await self.fetchAndApply() }
        inFlight = fetch
        return fetch
    }

    /// The keys currently served, if any document has been loaded.
    public var currentKeys: JWKSKeySet? { keySet }

    private func mayRefetchForUnknownKey() -> Bool {
        guard let lastFetchStarted else { return true }
        return clock.now() >= lastFetchStarted.addingTimeInterval(TimeInterval(configuration.refetchInterval))
    }

    private func fetchAndApply() async {
        let started = clock.now()
        lastFetchStarted = started
        defer { inFlight = nil }
        let result: JWKSFetchResult
        do {
            result = try await source.fetch(ifNoneMatch: keySet == nil ? nil : etag)
        } catch {
            // A source's error may quote the answer (a header, a status line): escaped here,
            // so that every reason an event carries is safe to log as it is.
            failed("fetch failed: \(LogText.escaped("\(error)", limit: 512))", at: started)
            return
        }
        switch result {
        case .notModified(let maxAge):
            guard keySet != nil else {
                failed("304 Not Modified without a cached document", at: started)
                return
            }
            freshUntil = started.addingTimeInterval(TimeInterval(configuration.freshness(maxAge: maxAge)))
            onEvent(.notModified)
        case .document(let bytes, let newETag, let maxAge):
            let parsed: JWKSKeySet
            do {
                parsed = try JWKSKeySet(document: bytes, maximumSize: configuration.maximumDocumentSize)
            } catch {
                failed("\(error)", at: started)
                return
            }
            keySet = parsed
            etag = newETag
            freshUntil = started.addingTimeInterval(TimeInterval(configuration.freshness(maxAge: maxAge)))
            onEvent(.updated(keyIDs: parsed.keys.keys.sorted(), skipped: parsed.skipped))
        }
    }

    private func failed(_ reason: String, at started: Date) {
        // Back off, but never shorten the freshness of a set that is still fresh (an
        // unknown-kid refetch can fail while the set is).
        freshUntil = max(freshUntil, started.addingTimeInterval(TimeInterval(configuration.refetchInterval)))
        onEvent(.failed(reason: reason, servingKeys: keySet?.keys.count ?? 0))
    }
}
