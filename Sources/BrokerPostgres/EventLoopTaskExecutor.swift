import NIOCore

/// Runs a task's jobs on an event loop. A transaction that prefers its connection's event loop
/// sends each statement from the loop and resumes there when the answer arrives, where otherwise
/// every statement hopped from the cooperative pool to the loop and back (three thread wake-ups
/// per statement; most of the broker's own cost of a refresh grant on PostgreSQL). Only for
/// bodies that compute next to nothing: anything they do holds up the loop's other connections.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
