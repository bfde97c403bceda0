/// The cost of an argon2id password hash: how much memory, how many passes, how many lanes.
///
/// New hashes use the parameters the broker is configured with; a stored hash whose parameters
/// differ is still accepted but reported as needing a rehash, so raising the cost later upgrades
/// every account the next time its owner logs in.
///
/// ```swift
/// let hasher = PasswordHasher(parameters: .owaspMinimum)
/// let stronger = PasswordHasher(parameters: Argon2idParameters(memoryKiB: 47_104, iterations: 1, parallelism: 1))
/// ```
public struct Argon2idParameters: Sendable, Equatable, Codable {
    /// Memory cost in KiB (argon2's `m`). Must be at least `8 * parallelism`.
    public var memoryKiB: UInt32
    /// Number of passes over the memory (argon2's `t`).
    public var iterations: UInt32
    /// Number of independent lanes (argon2's `p`).
    public var parallelism: UInt32

    public init(memoryKiB: UInt32, iterations: UInt32, parallelism: UInt32) {
        self.memoryKiB = memoryKiB
        self.iterations = iterations
        self.parallelism = parallelism
    }

    /// OWASP's Password Storage Cheat Sheet minimum for argon2id (19 MiB, 2 passes, 1 lane):
    /// cheap enough to run many logins concurrently on a small host, still memory-hard.
    public static let owaspMinimum = Argon2idParameters(memoryKiB: 19_456, iterations: 2, parallelism: 1)
}

extension Argon2idParameters {
    /// Upper bounds applied to every argon2 hash, stored or new. A stored hash comes from a database
    /// a migration may have filled from elsewhere; without a ceiling one row could make a single
    /// login allocate terabytes or spin for minutes.
    static let maximumMemoryKiB: UInt32 = 4 * 1024 * 1024  // 4 GiB
    static let maximumIterations: UInt32 = 100
    static let maximumParallelism: UInt32 = 255

    /// Whether libargon2 would accept these parameters and they stay under the ceilings above.
    var isWithinBounds: Bool {
        (1...Self.maximumParallelism).contains(parallelism)
            && (1...Self.maximumIterations).contains(iterations)
            && memoryKiB <= Self.maximumMemoryKiB
            // libargon2 needs two blocks per slice per lane (ARGON2_MIN_MEMORY per lane).
            && UInt64(memoryKiB) >= 8 * UInt64(parallelism)
    }
}
