import BrokerCore
import CBrokerShims
import Foundation

/// The one thread a SQLite connection is used on, and a task executor for it.
///
/// SQLite calls block (a `COMMIT` waits for the disk), so they never run on an event loop or in
/// the cooperative pool. Handing each statement to a thread pool and back costs several thread
/// wake-ups per statement, which dominated a refresh grant's profile. Instead a whole transaction
/// runs here: ``SQLiteStore`` runs its body with this thread as the task's executor preference,
/// so the body's `await`s on the transaction's methods stay on this thread and each statement is a
/// plain function call (``DatabaseConnection/run(_:)`` checks ``isCurrent``).
///
/// Work runs in submission order. ``shutDown()`` lets queued work finish, then ends the thread;
/// later submissions fail with `StoreError.engine("store is closed")`.
final class DatabaseThread: TaskExecutor, @unchecked Sendable {
    // All fields below are guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    private var isStopping = false
    private var thread: pthread_t?
    private var finished: [CheckedContinuation<Void, Never>] = []
    private var hasFinished = false

    private init() {}

    /// Starts a thread named `name` (as `top -H` shows it).
    static func start(name: String) -> DatabaseThread {
        let executor = DatabaseThread()
        let thread = Thread {
            // Foundation does not name the system thread on Linux; `top -H` and `perf` show this.
            _ = broker_name_current_thread(name)
            executor.serve()
        }
        thread.name = name
        thread.start()
        executor.condition.lock()
        while executor.thread == nil { executor.condition.wait() }
        executor.condition.unlock()
        return executor
    }

    /// Whether the caller runs on this thread.
    var isCurrent: Bool {
        self.condition.lock()
        defer { self.condition.unlock() }
        guard let thread = self.thread else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    /// Queues `work`; `false` (and `work` is dropped) once the thread is stopping.
    @discardableResult
    func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        self.condition.lock()
        defer { self.condition.unlock() }
        guard !self.isStopping else { return false }
        self.queue.append(work)
        if self.queue.count == 1 { self.condition.signal() }
        return true
    }

    /// Runs `work` on this thread: directly when already on it, otherwise queued.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        if self.isCurrent { return try work() }
        return try await withCheckedThrowingContinuation { continuation in
            let queued = self.submit { continuation.resume(with: Result { try work() }) }
            if !queued { continuation.resume(throwing: StoreError.engine("store is closed")) }
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let queued = self.submit { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
        // A task that prefers this executor after it stopped still has to run somewhere.
        if !queued { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }

    /// Lets the queued work finish, then ends the thread. Returns once it has ended.
    func shutDown() async {
        await withCheckedContinuation { continuation in
            self.condition.lock()
            self.isStopping = true
            if self.hasFinished {
                self.condition.unlock()
                continuation.resume()
                return
            }
            self.finished.append(continuation)
            self.condition.signal()
            self.condition.unlock()
        }
    }

    private func serve() {
        self.condition.lock()
        self.thread = pthread_self()
        self.condition.broadcast()
        while true {
            while self.queue.isEmpty && !self.isStopping { self.condition.wait() }
            if self.queue.isEmpty { break }
            let batch = self.queue
            self.queue.removeAll(keepingCapacity: true)
            self.condition.unlock()
            for work in batch { work() }
            self.condition.lock()
        }
        self.hasFinished = true
        let waiting = self.finished
        self.finished = []
        self.condition.unlock()
        for continuation in waiting { continuation.resume() }
    }
}
