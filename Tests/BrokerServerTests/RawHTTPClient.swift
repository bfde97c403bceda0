import Dispatch
import Foundation

/// Bytes on a raw loopback TCP connection: the requests no HTTP client library will send
/// (broken chunk sizes, unknown transfer codings, bodies cut short).
enum RawHTTPClient {
    /// How the client ends its side after sending.
    enum Ending: Sendable {
        /// `shutdown(SHUT_WR)`: the request is over, the answer can still be read.
        case halfClose
        /// `close()` at once: nobody is left to answer.
        case close
    }

    struct Failed: Error, CustomStringConvertible { var description: String }

    /// Sends `request` and returns everything the server writes until it closes the connection
    /// (or `timeout` passes without a byte). Blocking I/O runs on a Dispatch thread, never on
    /// the cooperative pool the server's handlers need.
    static func exchange(port: Int, _ request: String, ending: Ending = .halfClose, timeout: Int = 10) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try blockingExchange(port: port, Array(request.utf8), ending: ending, timeout: timeout) })
            }
        }
    }

    private static func blockingExchange(port: Int, _ request: [UInt8], ending: Ending, timeout: Int) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failed(description: "socket() failed") }
        var closed = false
        defer { if !closed { close(fd) } }
        var wait = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { throw Failed(description: "connect() to \(port) failed") }
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw Failed(description: "send() failed") }
            sent += count
        }
        switch ending {
        case .close:
            close(fd)
            closed = true
            return []
        case .halfClose:
            shutdown(fd, Int32(SHUT_WR))
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }  // 0: closed; -1: reset or timed out
            received += chunk[..<count]
        }
        return received
    }

    /// The first HTTP/1.1 response in `bytes`: status, headers (lower-cased names), body by
    /// `Content-Length`; and how many responses the bytes hold.
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        var responseCount: Int

        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]) ?? [:]
        }

        init?(_ bytes: [UInt8]) {
            let text = String(decoding: bytes, as: UTF8.self)
            guard let headEnd = text.range(of: "\r\n\r\n") else { return nil }
            let lines = text[..<headEnd.lowerBound].components(separatedBy: "\r\n")
            let statusLine = lines[0].split(separator: " ")
            guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1", let status = Int(statusLine[1]) else { return nil }
            self.status = status
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            self.headers = headers
            let bodyStart = text[..<headEnd.upperBound].utf8.count
            let length = Int(headers["content-length"] ?? "0") ?? 0
            body = Array(bytes[bodyStart..<min(bytes.count, bodyStart + length)])
            responseCount = text.components(separatedBy: "HTTP/1.1 ").count - 1
        }
    }
}
