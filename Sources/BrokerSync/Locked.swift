#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value only reachable under a lock: the standard library's `Mutex` API, over a pthread mutex.
///
/// Why not `Mutex`: on Linux a contended `Mutex` hands the lock over through a futex that
/// ThreadSanitizer does not see, so `scripts/sanitize.sh thread` reported every contended
/// `Mutex` as a data race (32 reports in one run, all false; docs/fuzzing.md). TSan intercepts
/// `pthread_mutex_lock`, so with this lock a TSan report is a real race again.
///
/// ```swift
/// let hits = Locked(0)
/// hits.withLock { $0 += 1 }
/// ```
public final class Locked<Value: ~Copyable>: @unchecked Sendable {
    // @unchecked: `value` is only ever touched between lock and unlock, and `withLock` takes and
    // gives back values as `sending`, as `Mutex` does.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    public init(_ initialValue: consuming sending Value) {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        value = .allocate(capacity: 1)
        value.initialize(to: initialValue)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value while holding the lock. Never call `withLock` of the same
    /// lock from `body`: the mutex is not recursive.
    public func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}
