import Foundation

/// A value guarded by a lock, held only for the duration of `withLock`'s closure.
///
/// Used instead of `Synchronization.Mutex` because that one is built on futexes on Linux, which
/// ThreadSanitizer cannot see, so every guarded access would be reported as a race; `NSLock` is a
/// pthread mutex, which it understands.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        self.lock.lock()
        defer { self.lock.unlock() }
        return try body(&self.value)
    }
}
