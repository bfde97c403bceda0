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
/// - A `kid` not in the set causes a refetch, limited per kid and overall: a kid that caused a
///   fetch and was still absent (or that a new document withdrew) causes none for
///   `refetchInterval`, and at most `maximumUnknownKeyFetches` such fetches start within any
///   `refetchInterval`. So a key the broker has just published is fetched at once even right
///   after tokens of a withdrawn key (or another fetch) came in, while a flood of tokens with
///   invented `kid`s costs the broker a few requests per interval. The kids remembered are
///   those few per interval and the kids a document withdrew (at most
///   `maximumRememberedKeyIDs`), forgotten after `refetchInterval`.
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
    private var inFlight: Task<Void, Never>?
    /// When each fetch caused by an unknown kid started, within the last `refetchInterval`.
    private var unknownKeyFetchStarts: [Date] = []
    /// Kids known to be absent, with when they were found so: no fetch for them until
    /// `refetchInterval` after that.
    private var absentKeyIDs: [String: Date] = [:]
    /// No fetch for an unknown kid before this: set by a failed fetch.
    private var retryNotBefore = Date.distantPast

    /// A bound on the kids remembered as absent, whatever a document withdraws at once.
    public static let maximumRememberedKeyIDs = 1024

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
                // A fetch has just been waited for: another for an unknown kid would ask the same.
                await refresh()
                return keySet?.key(for: kid)
            } else if inFlight == nil {
                startFetch()
            }
        }
        if let key = keySet?.key(for: kid) { return key }
        if inFlight != nil {
            // Joining costs the broker nothing, so it is not counted, and the kid not remembered.
            await refresh()
            return keySet?.key(for: kid)
        }
        guard mayFetch(forUnknown: kid) else { return nil }
        let now = clock.now()
        unknownKeyFetchStarts.append(now)
        // Remembered before the fetch, so that lookups of this kid meanwhile join it rather
        // than start another; a document that has the kid forgets it.
        remember(absent: [kid], at: now)
        await refresh()
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

    private func mayFetch(forUnknown kid: String) -> Bool {
        let now = clock.now()
        guard now >= retryNotBefore else { return false }
        let window = TimeInterval(configuration.refetchInterval)
        if let absent = absentKeyIDs[kid], now < absent.addingTimeInterval(window) { return false }
        unknownKeyFetchStarts.removeAll { now >= $0.addingTimeInterval(window) }
        return unknownKeyFetchStarts.count < configuration.maximumUnknownKeyFetches
    }

    /// Records `kids` as absent at `time`, first forgetting the kids whose wait is over.
    private func remember(absent kids: some Collection<String>, at time: Date) {
        let window = TimeInterval(configuration.refetchInterval)
        let now = clock.now()
        absentKeyIDs = absentKeyIDs.filter { now < $0.value.addingTimeInterval(window) }
        for kid in kids where absentKeyIDs.count < Self.maximumRememberedKeyIDs || absentKeyIDs[kid] != nil {
            absentKeyIDs[kid] = time
        }
    }

    private func fetchAndApply() async {
        let started = clock.now()
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
            // A withdrawn key's tokens then cause no fetch either: they cannot use up the
            // ceiling that a newly published key's tokens may need.
            let withdrawn = keySet.map { Set($0.keys.keys).subtracting(parsed.keys.keys) } ?? []
            absentKeyIDs = absentKeyIDs.filter { parsed.keys[$0.key] == nil }
            remember(absent: withdrawn, at: started)
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
        retryNotBefore = started.addingTimeInterval(TimeInterval(configuration.refetchInterval))
        onEvent(.failed(reason: reason, servingKeys: keySet?.keys.count ?? 0))
    }
}
