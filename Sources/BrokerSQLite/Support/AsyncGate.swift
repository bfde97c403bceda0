import BrokerSync


/// A first-in, first-out mutual exclusion for Swift tasks.
///
/// A task waiting for the gate suspends: no thread ever blocks on it. The internal lock is held
/// only for a few instructions to update the queue, never across a suspension point.
///
/// A waiter whose task is cancelled leaves the queue and throws `CancellationError`. A task that has
/// been handed the gate owns it even if it is cancelled afterwards, and must call ``unlock()``.
///
/// ```swift
/// let gate = AsyncGate()
/// try await gate.lock()
/// defer { gate.unlock() }
/// // … exclusive work …
/// ```
final class AsyncGate: Sendable {
    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var isLocked = false
        /// Tasks waiting for the gate, oldest first.
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
    }

    private enum Attempt {
        case acquired
        case queued
        case cancelled
    }

    private let state = Locked(State())

    init() {}

    /// Waits until the gate is free and takes it. Throws `CancellationError` (without taking the
    /// gate) if the task is cancelled before its turn comes.
    func lock() async throws {
        try Task.checkCancellation()
        let waiterID: UInt64? = self.state.withLock { state in
            if !state.isLocked {
                state.isLocked = true
                return nil
            }
            state.nextWaiterID &+= 1
            return state.nextWaiterID
        }
        guard let waiterID else { return }

        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // Cancellation sets the task's flag before it runs the handler below, and both take
                // the lock: either we see the flag here, or the handler finds us in the queue.
                let attempt: Attempt = self.state.withLock { state in
                    if Task.isCancelled { return .cancelled }
                    if !state.isLocked {
                        state.isLocked = true
                        return .acquired
                    }
                    state.waiters.append(Waiter(id: waiterID, continuation: continuation))
                    return .queued
                }
                switch attempt {
                case .acquired: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .queued: break
                }
            }
        } onCancel: {
            let continuation = self.state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == waiterID }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            continuation?.resume(throwing: CancellationError())
        }
    }

    /// Takes the gate even if the task is cancelled (for shutting down).
    func lockIgnoringCancellation() async {
        let waiterID: UInt64? = self.state.withLock { state in
            if !state.isLocked {
                state.isLocked = true
                return nil
            }
            state.nextWaiterID &+= 1
            return state.nextWaiterID
        }
        guard let waiterID else { return }
        // The continuation is only ever resumed without an error here: no cancellation handler.
        try? await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let acquired: Bool = self.state.withLock { state in
                if !state.isLocked {
                    state.isLocked = true
                    return true
                }
                state.waiters.append(Waiter(id: waiterID, continuation: continuation))
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    /// Releases the gate, handing it directly to the oldest waiter if there is one.
    func unlock() {
        let next = self.state.withLock { state -> CheckedContinuation<Void, any Error>? in
            precondition(state.isLocked, "AsyncGate.unlock() called on an unlocked gate")
            if state.waiters.isEmpty {
                state.isLocked = false
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}
