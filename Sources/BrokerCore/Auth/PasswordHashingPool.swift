import BrokerCrypto
import NIOPosix
import Synchronization

/// Runs password hashing on its own threads, never on an event loop or Swift's cooperative pool:
/// argon2id takes tens of milliseconds and ~19 MiB per hash. The thread count bounds how many
/// run at once, and so the memory they take.
///
/// ```swift
/// let pool = PasswordHashingPool(hasher: PasswordHasher(parameters: .owaspMinimum), concurrency: 2)
/// let encoded = try await pool.hash("correct horse battery staple")
/// ```
public final class PasswordHashingPool: Sendable {
    public let hasher: PasswordHasher
    private let threads: NIOThreadPool
    /// A valid argon2id hash of a random password, verified when the username is unknown so that
    /// an unknown user costs the same time as a wrong password.
    private let dummyHash: String
    private let verificationCount = Atomic<Int>(0)

    public init(hasher: PasswordHasher, concurrency: Int) {
        self.hasher = hasher
        self.threads = NIOThreadPool(numberOfThreads: max(1, concurrency))
        self.threads.start()
        self.dummyHash = (try? hasher.hash(Base64URL.encode(SecureRandom.bytes(24)))) ?? ""
    }

    public func hash(_ password: String) async throws -> String {
        let hasher = self.hasher
        return try await threads.runIfActive { try hasher.hash(password) }
    }

    public func verify(_ password: String, against encoded: String) async throws -> PasswordVerification {
        let hasher = self.hasher
        _ = verificationCount.add(1, ordering: .relaxed)
        return try await threads.runIfActive { hasher.verify(password, against: encoded) }
    }

    /// Spends the time of one verification, for unknown usernames and accounts without a password.
    public func verifyDummy(_ password: String) async throws {
        _ = try await verify(password, against: dummyHash)
    }

    /// How many passwords were verified since start (dummy verifications included): what the
    /// login throttle bounds.
    public var verifications: Int {
        verificationCount.load(ordering: .relaxed)
    }

    public func shutdown() async throws {
        try await threads.shutdownGracefully()
    }

    /// A pool dropped without ``shutdown()`` (a CLI command, a test) still lets its threads go;
    /// shutting down twice is harmless.
    deinit {
        threads.shutdownGracefully { _ in }
    }
}
