import BrokerSync
import Foundation
import Synchronization

/// A loopback TCP server that answers every connection with exactly the bytes a test scripts:
/// valid HTTP, a lying `Content-Length`, a body that never ends, or no HTTP at all. Plain
/// sockets on a thread of their own, so that nothing between the script and the wire tidies
/// the answer up.
///
/// ```swift
/// let server = try ScriptedHTTPServer { _ in .bytes(Array("HTTP/1.1 200 OK\r\n\r\n".utf8)) }
/// defer { server.stop() }
/// let url = "http://127.0.0.1:\(server.port)/jwks.json"
/// ```
final class ScriptedHTTPServer: Sendable {
    enum Answer: Sendable {
        /// These bytes, then the connection closes.
        case bytes([UInt8])
        /// `head`, then one byte of `filler` every `interval` seconds until the client leaves.
        case drip(head: [UInt8], interval: TimeInterval)
    }

    let port: Int
    private let listener: Int32
    private let stopped = Atomic<Bool>(false)
    private let requests = Locked<[String]>([])
    private let bodies = Locked<[[UInt8]]>([])

    /// The request heads received so far.
    var received: [String] { requests.withLock { $0 } }
    /// The bodies of those requests (as their `Content-Length` says; empty without one), in order.
    var receivedBodies: [[UInt8]] { bodies.withLock { $0 } }

    init(_ answer: @escaping @Sendable (_ requestHead: String) -> Answer) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 16) == 0 else {
            close(listener)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.listener = listener
        self.port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in
            while !stopped.load(ordering: .relaxed) {
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { return }
                let worker = Thread { [self] in
                    serve(connection, answer)
                }
                worker.start()
            }
        }
        thread.start()
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func serve(_ connection: Int32, _ answer: (String) -> Answer) {
        defer { close(connection) }
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while head.endOfHead == nil, head.count < 65536 {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { return }
            head += buffer[0..<count]
        }
        // What came after the head is the start of the body; the rest follows, up to Content-Length.
        let end = head.endOfHead ?? head.count
        var body = Array(head[end...])
        head = Array(head[..<end])
        let text = String(decoding: head, as: UTF8.self)
        let length = text.split(separator: "\r\n").compactMap { line -> Int? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
            return Int(parts[1].trimmingCharacters(in: .whitespaces))
        }.first ?? 0
        while body.count < min(length, 1 << 20) {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            body += buffer[0..<count]
        }
        requests.withLock { $0.append(text) }
        bodies.withLock { $0.append(body) }
        switch answer(text) {
        case .bytes(let bytes):
            _ = send(connection, bytes, bytes.count, Int32(MSG_NOSIGNAL))
        case .drip(let head, let interval):
            guard send(connection, head, head.count, Int32(MSG_NOSIGNAL)) == head.count else { return }
            while !stopped.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: interval)
                guard send(connection, [UInt8(ascii: " ")], 1, Int32(MSG_NOSIGNAL)) == 1 else { return }
            }
        }
    }
}

extension Array where Element == UInt8 {
    /// The index just past the first blank line (`\r\n\r\n`), if any.
    fileprivate var endOfHead: Int? {
        let marker = Array("\r\n\r\n".utf8)
        guard count >= marker.count else { return nil }
        for start in 0...(count - marker.count) where Array(self[start..<(start + marker.count)]) == marker {
            return start + marker.count
        }
        return nil
    }
}

/// HTTP answers for a scripted server.
enum ScriptedAnswer {
    /// A complete response: the status line, `headers` as given (nothing added but
    /// `Content-Length` when `contentLength` is true), the body.
    static func http(
        status: String = "200 OK", headers: [String] = [], body: [UInt8], contentLength: Bool = true
    ) -> [UInt8] {
        var head = "HTTP/1.1 \(status)\r\nConnection: close\r\n"
        for header in headers { head += "\(header)\r\n" }
        if contentLength { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }
}
