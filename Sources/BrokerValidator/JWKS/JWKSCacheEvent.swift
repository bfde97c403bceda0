/// What a `JWKSCache` did on a fetch, for the embedding gateway's log: the cache itself has no
/// logger, so that the library brings no logging dependency.
///
/// ```swift
/// let cache = JWKSCache(source: source) { event in
///     if case .failed(let reason, let serving) = event { logger.warning("JWKS: \(reason); \(serving) keys kept") }
/// }
/// ```
public enum JWKSCacheEvent: Sendable, Equatable {
    /// A new document replaced the key set. The key ids are the document's, unescaped; the
    /// skipped entries' descriptions are escaped.
    case updated(keyIDs: [String], skipped: [JWKSKeySet.SkippedEntry])
    /// The server answered 304: the keys are unchanged and fresh again.
    case notModified
    /// The fetch or the document failed; the previous keys (this many) are still served. The
    /// reason is escaped (`LogText`): safe to log as it is.
    case failed(reason: String, servingKeys: Int)
}
