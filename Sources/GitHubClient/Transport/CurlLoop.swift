import BrokerSync
import CCurl
import CCurlShims
import Foundation
import Synchronization

/// libcurl must be initialised once per process before any handle exists, and
/// `curl_global_init` is not thread-safe in the libcurl Debian 12 ships (7.88); a global
/// `let` is initialised exactly once, under a lock, by the Swift runtime.
private let curlGlobalInitialization: Int32 = broker_curl_global_init()

/// Runs every transfer of one client on a single thread it owns, through a curl multi handle.
///
/// One thread serves any number of concurrent requests (libcurl multiplexes them with
/// `curl_multi_poll`), so no call ever blocks Swift's cooperative pool or a NIO event loop:
/// callers suspend on a continuation that the loop thread resumes. The multi handle owns the
/// connection cache, so keep-alive connections (and TLS sessions) are reused across requests;
/// finished easy handles are reset and pooled rather than freed.
///
/// Everything except `inbox` is touched only by the loop thread.
final class CurlLoop: @unchecked Sendable {
    /// A request waiting for the loop thread to pick it up.
    private struct Submission: Sendable {
        var request: CurlRequest
        var continuation: CheckedContinuation<Result<CurlResponse, CurlFailure>, Never>
        var flag: CancellationFlag
    }

    private struct Inbox: ~Copyable {
        var submissions: [Submission] = []
        var stopping = false
        /// Set by the loop thread just before it frees the multi handle; after that nobody may
        /// call `curl_multi_wakeup` on it.
        var closed = false
    }

    /// Set from any thread when the awaiting task is cancelled; read by the loop thread.
    final class CancellationFlag: Sendable {
        private let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .acquiring) }
        func set() { value.store(true, ordering: .releasing) }
    }

    private let multi: UnsafeMutableRawPointer
    private let inbox = Locked(Inbox())
    private let maximumBodyBytes: Int
    private let proxy: String?
    private var running: [UnsafeMutableRawPointer: CurlTransfer] = [:]
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private static let maximumIdleHandles = 16

    /// - Parameters:
    ///   - maximumBodyBytes: larger bodies fail the transfer (`CurlFailure.bodyTooLarge`).
    ///   - maximumConnections: size of the keep-alive connection cache.
    ///   - proxy: an explicit proxy URL; `nil` ignores `http_proxy` and friends in the
    ///     environment, so that where the token goes is decided by configuration alone.
    init(maximumBodyBytes: Int, maximumConnections: Int, proxy: String?) throws(CurlFailure) {
        guard curlGlobalInitialization == 0 else { throw .transport("curl_global_init failed") }
        guard let multi = curl_multi_init() else { throw .transport("curl_multi_init failed") }
        self.multi = multi
        self.maximumBodyBytes = maximumBodyBytes
        self.proxy = proxy
        _ = broker_curl_multi_setopt_long(multi, Self.option(CURLMOPT_MAXCONNECTS), maximumConnections)
        let thread = Thread { [self] in self.run() }
        thread.name = "GitHubClient.curl"
        thread.start()
    }

    /// Performs `request`; suspends the caller, never blocks it.
    func perform(_ request: CurlRequest) async -> Result<CurlResponse, CurlFailure> {
        if Task.isCancelled { return .failure(.cancelled) }
        let flag = CancellationFlag()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let accepted = inbox.withLock { inbox in
                    guard !inbox.stopping else { return false }
                    inbox.submissions.append(Submission(request: request, continuation: continuation, flag: flag))
                    curl_multi_wakeup(multi)
                    return true
                }
                if !accepted { continuation.resume(returning: .failure(.shutDown)) }
            }
        } onCancel: {
            flag.set()
            inbox.withLock { inbox in
                if !inbox.closed { curl_multi_wakeup(multi) }
            }
        }
    }

    /// Fails every pending and running transfer and lets the thread exit. Idempotent.
    func shutdown() {
        inbox.withLock { inbox in
            guard !inbox.stopping else { return }
            inbox.stopping = true
            curl_multi_wakeup(multi)
        }
    }

    // MARK: - Loop thread

    private func run() {
        while true {
            let (submissions, stopping) = inbox.withLock { inbox in
                defer { inbox.submissions.removeAll() }
                return (inbox.submissions, inbox.stopping)
            }
            if stopping {
                for submission in submissions { submission.continuation.resume(returning: .failure(.shutDown)) }
                close()
                return
            }
            for submission in submissions { start(submission) }
            for (easy, transfer) in running where transfer.flag.isSet {
                finish(easy, with: .failure(.cancelled))
            }

            var stillRunning: Int32 = 0
            _ = curl_multi_perform(multi, &stillRunning)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                completed(easy, code: message.pointee.data.result)
            }
            // Waits for socket activity, libcurl's own next timer, or a wakeup from another
            // thread (a new request, a cancellation, shutdown), whichever comes first.
            _ = curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }

    private func start(_ submission: Submission) {
        if submission.flag.isSet {
            submission.continuation.resume(returning: .failure(.cancelled))
            return
        }
        guard let easy = idleHandles.popLast() ?? curl_easy_init() else {
            submission.continuation.resume(returning: .failure(.transport("curl_easy_init failed")))
            return
        }
        let transfer = CurlTransfer(
            continuation: submission.continuation, flag: submission.flag, maximumBodyBytes: maximumBodyBytes)
        guard transfer.configure(easy, for: submission.request, proxy: proxy),
            curl_multi_add_handle(multi, easy) == CURLM_OK
        else {
            transfer.release()
            recycle(easy)
            submission.continuation.resume(returning: .failure(.transport("could not configure the request")))
            return
        }
        running[easy] = transfer
    }

    private func completed(_ easy: UnsafeMutableRawPointer, code: CURLcode) {
        guard let transfer = running[easy] else { return }
        let result: Result<CurlResponse, CurlFailure>
        switch code {
        case CURLE_OK:
            var status = 0
            _ = broker_curl_easy_getinfo_long(easy, Self.info(CURLINFO_RESPONSE_CODE), &status)
            result = .success(CurlResponse(status: status, headers: transfer.headers, body: transfer.body))
        case CURLE_OPERATION_TIMEDOUT:
            result = .failure(.timedOut)
        case CURLE_ABORTED_BY_CALLBACK:
            result = .failure(.cancelled)
        case CURLE_FILESIZE_EXCEEDED:
            result = .failure(.bodyTooLarge)
        case CURLE_WRITE_ERROR where transfer.overflowed:
            result = .failure(.bodyTooLarge)
        default:
            // curl_easy_strerror returns a fixed text per code: it never quotes the request.
            let text = curl_easy_strerror(code).map { String(cString: $0) } ?? "unknown error"
            result = .failure(.transport("\(text) (curl \(code.rawValue))"))
        }
        finish(easy, with: result)
    }

    private func finish(_ easy: UnsafeMutableRawPointer, with result: Result<CurlResponse, CurlFailure>) {
        guard let transfer = running.removeValue(forKey: easy) else { return }
        curl_multi_remove_handle(multi, easy)
        transfer.release()
        recycle(easy)
        transfer.continuation.resume(returning: result)
    }

    private func recycle(_ easy: UnsafeMutableRawPointer) {
        if idleHandles.count < Self.maximumIdleHandles {
            // Clears options (so no header or body of this request leaks into the next one)
            // but keeps the handle's DNS and TLS session caches.
            curl_easy_reset(easy)
            idleHandles.append(easy)
        } else {
            curl_easy_cleanup(easy)
        }
    }

    private func close() {
        for easy in Array(running.keys) { finish(easy, with: .failure(.shutDown)) }
        for easy in idleHandles { curl_easy_cleanup(easy) }
        idleHandles.removeAll()
        let late = inbox.withLock { inbox in
            inbox.closed = true
            defer { inbox.submissions.removeAll() }
            return inbox.submissions
        }
        for submission in late { submission.continuation.resume(returning: .failure(.shutDown)) }
        curl_multi_cleanup(multi)
    }

    static func option(_ option: CURLMoption) -> Int32 { Int32(truncatingIfNeeded: option.rawValue) }
    static func info(_ info: CURLINFO) -> Int32 { Int32(truncatingIfNeeded: info.rawValue) }
}
