import Foundation
import XCTest

/// A browser's requests to a `broker serve` process, over raw loopback HTTP/1.1 (no client
/// library follows redirects or keeps cookies behind the test's back): for the process tests
/// of the portal (replicas, the release binary).
struct PortalProcessClient {
    var cookies: [String: String] = [:]
    var lastCSRF: String?

    struct Answer {
        var status: Int
        var headers: [(String, String)]
        var body: String

        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    mutating func send(_ method: String, _ port: Int, _ path: String, form: [(String, String)]? = nil) async throws -> Answer {
        var lines = ["\(method) \(path) HTTP/1.1", "Host: localhost:\(port)", "Connection: close", "User-Agent: PortalProcessClient"]
        if !cookies.isEmpty { lines.append("Cookie: " + cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")) }
        var body = ""
        if let form {
            body = form.map { "\(PortalBrowser.encode($0.0))=\(PortalBrowser.encode($0.1))" }.joined(separator: "&")
            lines.append("Content-Type: application/x-www-form-urlencoded")
            lines.append("Content-Length: \(body.utf8.count)")
        }
        let raw = try await RawHTTPClient.exchange(port: port, lines.joined(separator: "\r\n") + "\r\n\r\n" + body)
        let text = String(decoding: raw, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        let head = parts[0].components(separatedBy: "\r\n")
        let status = Int(head[0].split(separator: " ")[1]) ?? 0
        let headers = head.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let answer = Answer(status: status, headers: headers, body: parts.dropFirst().joined(separator: "\r\n\r\n"))
        for (name, value) in headers where name.lowercased() == "set-cookie" {
            let pair = value.split(separator: ";", maxSplits: 1)[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            cookies[String(pair[0])] = value.contains("Max-Age=0") ? nil : String(pair.count > 1 ? pair[1] : "")
        }
        if let token = PortalBrowser.csrfToken(in: answer.body) { lastCSRF = token }
        return answer
    }

    mutating func signIn(_ port: Int, _ username: String, _ password: String) async throws -> Answer {
        _ = try await send("GET", port, "/signin")
        return try await send("POST", port, "/signin", form: [("csrf", lastCSRF ?? ""), ("username", username), ("password", password)])
    }
}
