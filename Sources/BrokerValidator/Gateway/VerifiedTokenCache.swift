import BrokerCrypto
import BrokerSync
import Foundation

/// Tokens that passed every check but the audience, so that a gateway checks a token's
/// signature once rather than on every request (Envoy's `jwt_authn` keeps such a cache too).
///
/// - An entry is found by the SHA-256 of the token's bytes: the cache never holds a token, and
///   a token that differs in one byte is another entry.
/// - An entry says which key verified the token (`kid`, RFC 7638 thumbprint, algorithm) and
///   keeps its claims. It is only a candidate: `GatewayValidator` uses it while the key
///   published under that `kid` is still the same key and the time rules (`exp`, `nbf`, `iat`)
///   still pass, and drops it otherwise.
/// - Only verified tokens go in. A flood of invalid tokens adds nothing and evicts nothing.
/// - At most `capacity` entries. The entries are spread over up to `maximumShardCount` shards
///   by their hash, each behind its own lock, so that concurrent requests seldom wait for one
///   another; a full shard evicts its least recently used entry. Every operation is O(1).
/// - `capacity` 0 turns the cache off: nothing is hashed or stored.
///
/// ```swift
/// let cache = VerifiedTokenCache(capacity: 10_000)
/// let digest = TokenDigest(bearer)
/// if let entry = cache.entry(for: digest) { ... } else { cache.insert(entry, for: digest) }
/// ```
public final class VerifiedTokenCache: Sendable {
    /// What `broker gateway` holds unless told otherwise: about 11 MB (see docs/gateways.md).
    public static let defaultCapacity = 10_000
    /// More shards than cores only wastes memory; 16 covers any gateway host we expect.
    public static let maximumShardCount = 16
    /// Below this many entries per shard, fewer shards: a small cache keeps one exact LRU order.
    static let minimumShardCapacity = 256

    /// A verified token's claims and the key that verified it.
    public struct Entry: Sendable, Equatable {
        public let claims: AccessTokenClaims
        public let keyID: String
        /// Not the key itself: holding keys would keep every replaced copy of the JWKS alive.
        public let keyThumbprint: String
        public let algorithm: JWSAlgorithm

        public init(claims: AccessTokenClaims, keyID: String, key: PublicKey) {
            self.claims = claims
            self.keyID = keyID
            keyThumbprint = key.thumbprint
            algorithm = key.algorithm
        }

        /// Whether `key` is the key this entry's token was verified with: the same public key
        /// for the same algorithm, even if a newer copy of the JWKS built it again.
        public func wasVerified(by key: PublicKey) -> Bool {
            key.algorithm == algorithm && key.thumbprint == keyThumbprint
        }
    }

    /// Lookups that found an entry, lookups that found none, and entries found but dropped
    /// (expired, or their key no longer published under their `kid`).
    public struct Statistics: Sendable, Equatable {
        public var hits = 0
        public var misses = 0
        public var dropped = 0
        public var count = 0

        public init() {}
    }

    public let capacity: Int
    private let shards: [Locked<LeastRecentlyUsed>]

    /// - Parameter capacity: the most entries held at once; 0 (or less) turns the cache off.
    public init(capacity: Int) {
        let capacity = max(capacity, 0)
        self.capacity = capacity
        let shardCount = min(Self.maximumShardCount, max(1, capacity / Self.minimumShardCapacity))
        shards = (0..<shardCount).map { index in
            let share = capacity / shardCount + (index < capacity % shardCount ? 1 : 0)
            return Locked(LeastRecentlyUsed(capacity: share))
        }
    }

    public var isEnabled: Bool { capacity > 0 }

    /// The entry for `digest`'s token, now the most recently used of its shard.
    public func entry(for digest: TokenDigest) -> Entry? {
        guard isEnabled else { return nil }
        return shard(of: digest).withLock { $0.entry(for: digest) }
    }

    /// The entry for `digest`'s token if `isUsable` accepts it: it then counts as a hit and
    /// becomes the most recently used of its shard, as with `entry(for:)`. Otherwise nothing is
    /// counted, moved or dropped, so that a caller that goes on to `entry(for:)` leaves the
    /// statistics as that lookup alone would.
    ///
    /// `isUsable` runs under the shard's lock: it must be cheap (the gateway's is a key
    /// comparison and the time rules) and must not touch this cache.
    public func entry(for digest: TokenDigest, ifUsable isUsable: (Entry) -> Bool) -> Entry? {
        guard isEnabled else { return nil }
        return shard(of: digest).withLock { $0.entry(for: digest, ifUsable: isUsable) }
    }

    /// Adds or replaces the entry for `digest`'s token, evicting its shard's least recently
    /// used entry when the shard is full.
    public func insert(_ entry: Entry, for digest: TokenDigest) {
        guard isEnabled else { return }
        shard(of: digest).withLock { $0.insert(entry, for: digest) }
    }

    /// Drops the entry for `digest`'s token, found to no longer hold.
    public func remove(_ digest: TokenDigest) {
        guard isEnabled else { return }
        shard(of: digest).withLock { $0.remove(digest) }
    }

    /// Summed over the shards, each read under its own lock.
    public var statistics: Statistics {
        shards.reduce(into: Statistics()) { total, shard in
            let part = shard.withLock { $0.statistics }
            total.hits += part.hits
            total.misses += part.misses
            total.dropped += part.dropped
            total.count += part.count
        }
    }

    private func shard(of digest: TokenDigest) -> Locked<LeastRecentlyUsed> {
        shards[Int(digest.first % UInt64(shards.count))]
    }
}

/// The SHA-256 of a token's bytes, as four words: a dictionary key that allocates nothing.
///
/// ```swift
/// let digest = TokenDigest("eyJhbGciOi...")
/// ```
public struct TokenDigest: Hashable, Sendable {
    let first: UInt64
    let second: UInt64
    let third: UInt64
    let fourth: UInt64

    public init(_ token: String) {
        let bytes = Digest.sha256(token.utf8)
        (first, second, third, fourth) = bytes.withUnsafeBytes { raw in
            (
                raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            )
        }
    }
}

/// One shard: a dictionary into a doubly linked list kept in an array, newest first, with the
/// slots of removed entries reused. Not thread-safe: a `Locked` holds it.
struct LeastRecentlyUsed {
    private struct Node {
        var digest: TokenDigest
        var entry: VerifiedTokenCache.Entry
        var newer: Int
        var older: Int
    }

    let capacity: Int
    private var nodes: [Node] = []
    private var index: [TokenDigest: Int] = [:]
    private var freeSlots: [Int] = []
    private var newest = -1
    private var oldest = -1
    private(set) var statistics = VerifiedTokenCache.Statistics()

    init(capacity: Int) {
        self.capacity = capacity
    }

    mutating func entry(for digest: TokenDigest) -> VerifiedTokenCache.Entry? {
        guard let slot = index[digest] else {
            statistics.misses += 1
            return nil
        }
        statistics.hits += 1
        unlink(slot)
        linkAsNewest(slot)
        return nodes[slot].entry
    }

    mutating func entry(for digest: TokenDigest, ifUsable isUsable: (VerifiedTokenCache.Entry) -> Bool) -> VerifiedTokenCache.Entry? {
        guard let slot = index[digest], isUsable(nodes[slot].entry) else { return nil }
        statistics.hits += 1
        unlink(slot)
        linkAsNewest(slot)
        return nodes[slot].entry
    }

    mutating func insert(_ entry: VerifiedTokenCache.Entry, for digest: TokenDigest) {
        guard capacity > 0 else { return }
        if let slot = index[digest] {
            nodes[slot].entry = entry
            unlink(slot)
            linkAsNewest(slot)
            return
        }
        let slot: Int
        if index.count >= capacity {
            slot = oldest
            unlink(slot)
            index[nodes[slot].digest] = nil
            nodes[slot] = Node(digest: digest, entry: entry, newer: -1, older: -1)
        } else if let free = freeSlots.popLast() {
            slot = free
            nodes[slot] = Node(digest: digest, entry: entry, newer: -1, older: -1)
        } else {
            slot = nodes.count
            nodes.append(Node(digest: digest, entry: entry, newer: -1, older: -1))
        }
        index[digest] = slot
        linkAsNewest(slot)
        statistics.count = index.count
    }

    mutating func remove(_ digest: TokenDigest) {
        guard let slot = index.removeValue(forKey: digest) else { return }
        unlink(slot)
        freeSlots.append(slot)
        statistics.dropped += 1
        statistics.count = index.count
    }

    private mutating func unlink(_ slot: Int) {
        let (newer, older) = (nodes[slot].newer, nodes[slot].older)
        if newer >= 0 { nodes[newer].older = older } else { newest = older }
        if older >= 0 { nodes[older].newer = newer } else { oldest = newer }
        nodes[slot].newer = -1
        nodes[slot].older = -1
    }

    private mutating func linkAsNewest(_ slot: Int) {
        nodes[slot].older = newest
        if newest >= 0 { nodes[newest].newer = slot } else { oldest = slot }
        newest = slot
    }
}
