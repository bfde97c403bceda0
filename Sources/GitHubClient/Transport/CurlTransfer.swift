import CCurl
import CCurlShims

/// The state of one transfer while libcurl runs it: the header list it must keep alive, and
/// the response as it arrives. Owned and touched only by the `CurlLoop` thread; libcurl's
/// callbacks receive it as an unretained pointer while `CurlLoop.running` holds it.
final class CurlTransfer {
    let continuation: CheckedContinuation<Result<CurlResponse, CurlFailure>, Never>
    let flag: CurlLoop.CancellationFlag
    private let maximumBodyBytes: Int
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private(set) var headers = ResponseHeaders()
    private(set) var body: [UInt8] = []
    private var headerBytes = 0
    /// The write callback refused data because the body outgrew the cap.
    private(set) var overflowed = false

    /// Headers of a real response are a few KiB; the cap stops a hostile server from making
    /// us buffer without bound through headers instead of the body.
    private static let maximumHeaderBytes = 64 * 1024

    init(
        continuation: CheckedContinuation<Result<CurlResponse, CurlFailure>, Never>,
        flag: CurlLoop.CancellationFlag, maximumBodyBytes: Int
    ) {
        self.continuation = continuation
        self.flag = flag
        self.maximumBodyBytes = maximumBodyBytes
    }

    /// Frees what libcurl borrowed for the transfer; call after removing the handle.
    func release() {
        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
    }

    /// Sets every option of `request` on `easy` (a fresh or reset handle). False if libcurl
    /// refused one, in which case the request must not be sent.
    func configure(_ easy: UnsafeMutableRawPointer, for request: CurlRequest, proxy: String?) -> Bool {
        for line in request.headers { headerList = curl_slist_append(headerList, line) }
        // libcurl would add `Expect: 100-continue` to larger POSTs, costing a round trip.
        headerList = curl_slist_append(headerList, "Expect:")

        let context = Unmanaged.passUnretained(self).toOpaque()
        var ok = true
        func check(_ code: Int32) { ok = ok && code == 0 }

        check(broker_curl_easy_setopt_string(easy, Self.option(CURLOPT_URL), request.url))
        // Only HTTP(S), for the request and for any redirect; and no redirect is followed, so
        // the Authorization header can never be replayed to a host named by a Location header.
        check(broker_curl_easy_setopt_string(easy, Self.option(CURLOPT_PROTOCOLS_STR), "http,https"))
        check(broker_curl_easy_setopt_string(easy, Self.option(CURLOPT_REDIR_PROTOCOLS_STR), "http,https"))
        check(broker_curl_easy_setopt_long(easy, Self.option(CURLOPT_FOLLOWLOCATION), 0))
        check(broker_curl_easy_setopt_long(easy, Self.option(CURLOPT_SSL_VERIFYPEER), 1))
        check(broker_curl_easy_setopt_long(easy, Self.option(CURLOPT_SSL_VERIFYHOST), 2))
        // Signals are process-wide; libcurl must not use SIGALRM for DNS timeouts in a
        // multi-threaded server.
        check(broker_curl_easy_setopt_long(easy, Self.option(CURLOPT_NOSIGNAL), 1))
        check(broker_curl_easy_setopt_long(easy, Self.option(CURLOPT_TCP_KEEPALIVE), 1))
        check(broker_curl_easy_setopt_string(easy, Self.option(CURLOPT_PROXY), proxy ?? ""))
        check(broker_curl_easy_setopt_long(easy, Self.option(CURLOPT_CONNECTTIMEOUT_MS), request.connectTimeoutMilliseconds))
        check(broker_curl_easy_setopt_long(easy, Self.option(CURLOPT_TIMEOUT_MS), request.totalTimeoutMilliseconds))
        // Every encoding libcurl was built with; the body cap applies to the decoded bytes.
        check(broker_curl_easy_setopt_string(easy, Self.option(CURLOPT_ACCEPT_ENCODING), ""))
        check(broker_curl_easy_setopt_off_t(easy, Self.option(CURLOPT_MAXFILESIZE_LARGE), Int64(maximumBodyBytes)))
        check(broker_curl_easy_setopt_pointer(easy, Self.option(CURLOPT_HTTPHEADER), UnsafeMutableRawPointer(headerList)))

        switch request.method {
        case .get:
            check(broker_curl_easy_setopt_long(easy, Self.option(CURLOPT_HTTPGET), 1))
        case .post(let body):
            check(broker_curl_easy_setopt_off_t(easy, Self.option(CURLOPT_POSTFIELDSIZE_LARGE), Int64(body.count)))
            // COPYPOSTFIELDS: libcurl keeps its own copy, so the Swift array need not outlive this call.
            if body.isEmpty {
                check(broker_curl_easy_setopt_string(easy, Self.option(CURLOPT_COPYPOSTFIELDS), ""))
            } else {
                check(body.withUnsafeBytes { bytes in
                    broker_curl_easy_setopt_pointer(
                        easy, Self.option(CURLOPT_COPYPOSTFIELDS), UnsafeMutableRawPointer(mutating: bytes.baseAddress))
                })
            }
        }

        check(broker_curl_easy_setopt_pointer(easy, Self.option(CURLOPT_WRITEDATA), context))
        check(broker_curl_easy_setopt_data_callback(easy, Self.option(CURLOPT_WRITEFUNCTION)) { data, size, count, userdata in
            guard let data, let userdata else { return 0 }
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
            return transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: size * count))
        })
        check(broker_curl_easy_setopt_pointer(easy, Self.option(CURLOPT_HEADERDATA), context))
        check(broker_curl_easy_setopt_data_callback(easy, Self.option(CURLOPT_HEADERFUNCTION)) { data, size, count, userdata in
            guard let data, let userdata else { return 0 }
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
            return transfer.receiveHeader(UnsafeRawBufferPointer(start: data, count: size * count))
        })
        // The progress callback is the one place libcurl asks, mid-transfer, whether to go on:
        // it aborts a cancelled transfer even while the loop is busy elsewhere.
        check(broker_curl_easy_setopt_long(easy, Self.option(CURLOPT_NOPROGRESS), 0))
        check(broker_curl_easy_setopt_pointer(easy, Self.option(CURLOPT_XFERINFODATA), context))
        check(broker_curl_easy_setopt_xferinfo_callback(easy) { userdata, _, _, _, _ in
            guard let userdata else { return 0 }
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
            return transfer.flag.isSet ? 1 : 0
        })
        return ok
    }

    private func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard body.count + bytes.count <= maximumBodyBytes else {
            overflowed = true
            return 0  // anything but bytes.count makes libcurl abort with CURLE_WRITE_ERROR
        }
        body.append(contentsOf: bytes)
        return bytes.count
    }

    private func receiveHeader(_ bytes: UnsafeRawBufferPointer) -> Int {
        headerBytes += bytes.count
        guard headerBytes <= Self.maximumHeaderBytes else { return 0 }
        let line = String(decoding: bytes, as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            // A new status line (after a 100 Continue, or a proxy's CONNECT answer): only the
            // final response's headers count.
            headers = ResponseHeaders()
            return bytes.count
        }
        guard let colon = line.firstIndex(of: ":") else { return bytes.count }
        let name = line[..<colon].trimmingWhitespace()
        let value = line[line.index(after: colon)...].trimmingWhitespace()
        if !name.isEmpty { headers.append(name: name, value: value) }
        return bytes.count
    }

    static func option(_ option: CURLoption) -> Int32 { Int32(truncatingIfNeeded: option.rawValue) }
}
