import BrokerSync
import Foundation

/// Records in the store, before a key signs a token, the longest lifetime of a token the key has
/// signed, so that a retired key is published only as long as its own tokens can be valid
/// (``KeyLifecyclePolicy/unpublishesAt(_:signed:)``), not as long as the longest family the
/// configuration allows.
///
/// The record precedes the signature and is durable (a store transaction): a process deciding
/// later to unpublish the key reads it. Each process remembers what it has recorded, so the hot
/// path writes once per key and longer lifetime, not once per token.
///
/// ```swift
/// let log = SignedLifetimeLog(store: store)
/// try await log.willSign(kid: active.kid, lifetime: 3600)   // then sign
/// ```
public final class SignedLifetimeLog: Sendable {
    public typealias Record = @Sendable (_ kid: String, _ lifetime: Int) async throws -> Void

    private let record: Record
    /// kid → the longest lifetime this process knows to be recorded.
    private let recorded = Locked<[String: Int]>([:])

    public init(record: @escaping Record) {
        self.record = record
    }

    public convenience init(store: any Store) {
        self.init { kid, lifetime in
            try await store.transaction { tx in try await tx.recordSignedLifetime(kid: kid, lifetime: lifetime) }
        }
    }

    /// Returns once the store holds a lifetime of at least `lifetime` for `kid`; throws (and the
    /// token must not be signed) when it could not record it.
    public func willSign(kid: String, lifetime: Int) async throws {
        let lifetime = max(0, lifetime)
        if recorded.withLock({ ($0[kid] ?? -1) >= lifetime }) { return }
        try await record(kid, lifetime)
        recorded.withLock { $0[kid] = max($0[kid] ?? 0, lifetime) }
    }
}

/// What the store said, at one moment, about the tokens some retired keys signed: the input of
/// ``KeyLifecyclePolicy/unpublishesAt(_:signed:)``.
public struct SignedLifetimes: Sendable, Equatable {
    /// When the store was read (taken before the read): a record written later can only be
    /// of a key that still signs, so nothing read here is relied on past this moment.
    public var readAt: Date
    /// The keys looked up: kid → the longest lifetime recorded, 0 when it signed nothing. A key
    /// not looked up is not in here (its worst case applies).
    public var longest: [String: Int]

    public init(readAt: Date, longest: [String: Int]) {
        self.readAt = readAt
        self.longest = longest
    }

    /// Nothing known: every retired key keeps its worst-case retention.
    public static let unknown = SignedLifetimes(readAt: .distantPast, longest: [:])

    /// Reads the records of `kids` from `store`; a kid without a record signed nothing.
    public static func read(kids: [String], from store: any Store, clock: any WallClock) async throws -> SignedLifetimes {
        let readAt = clock.now()
        let recorded = try await store.read { tx in try await tx.longestSignedLifetimes(kids: kids) }
        var longest: [String: Int] = [:]
        for kid in kids { longest[kid] = recorded[kid] ?? 0 }
        return SignedLifetimes(readAt: readAt, longest: longest)
    }
}
