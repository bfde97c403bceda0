import BrokerCore
import FakeGitHub
import Foundation
import GitHubClient
import XCTest

/// The fake's authorize page as a browser meets it: a form without script that carries the
/// request in hidden fields, then a 302 back to the application with a code and the state,
/// which the client exchanges.
final class FakeGitHubAuthorizePageTests: XCTestCase {
    var github: FakeGitHub!
    let callback = "http://127.0.0.1:8080/signin/github/callback"
    let verifier = GitHubWebFlow.newCodeVerifier()

    override func setUp() async throws {
        github = try await FakeGitHub.start()
        github.addUser(login: "alice", token: "gho_alice")
    }

    override func tearDown() async throws {
        await github.stop()
    }

    /// The authorization request the portal sends, as form fields.
    func request(state: String = "st<\"ate'>&", method: String = "S256") -> [(String, String)] {
        [
            ("client_id", github.clientID), ("redirect_uri", callback), ("scope", "read:org"), ("state", state),
            ("code_challenge", GitHubWebFlow.codeChallenge(for: verifier)), ("code_challenge_method", method),
        ]
    }

    func testThePageCarriesTheRequestIntoItsForm() async throws {
        let response = try await LoopbackHTTP.get(port: github.port, "/login/oauth/authorize?" + LoopbackHTTP.form(request()))
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.headers["content-type"], "text/html; charset=utf-8")
        let page = response.text
        XCTAssertTrue(page.contains(#"<form method="post" action="/login/oauth/authorize">"#), page)
        XCTAssertTrue(page.contains(#"<label for="login">"#), page)
        XCTAssertTrue(page.contains(#"<input id="login" name="login">"#), page)
        XCTAssertTrue(page.contains(#"<button type="submit" id="authorize">Authorize</button>"#), page)
        XCTAssertFalse(page.lowercased().contains("<script"), page)
        XCTAssertTrue(page.contains(#"<input type="hidden" name="redirect_uri" value="\#(callback)">"#), page)
        XCTAssertTrue(page.contains(#"<input type="hidden" name="code_challenge_method" value="S256">"#), page)
        XCTAssertTrue(page.contains(#"<input type="hidden" name="state" value="st&lt;&quot;ate&#39;&gt;&amp;">"#), page)
    }

    func testApprovingRedirectsWithACodeAndTheStateThatTheClientExchanges() async throws {
        let state = "st<\"ate'>&"
        let response = try await LoopbackHTTP.post(
            port: github.port, "/login/oauth/authorize", form: request(state: state) + [("login", "alice")])
        XCTAssertEqual(response.status, 302)
        let location = try XCTUnwrap(response.headers["location"])
        let components = try XCTUnwrap(URLComponents(string: location))
        XCTAssertEqual(location.prefix(callback.count + 1), callback + "?")
        let query = Dictionary(uniqueKeysWithValues: (components.queryItems ?? []).map { ($0.name, $0.value ?? "") })
        XCTAssertEqual(Set(query.keys), ["code", "state"])
        XCTAssertEqual(query["state"], state)
        XCTAssertTrue(location.hasSuffix("&state=st%3C%22ate%27%3E%26"), location)

        let client = try github.client { $0.clientSecret = "fake-client-secret" }
        let token = try await client.exchangeAuthorizationCode(
            code: try XCTUnwrap(query["code"]), redirectURI: callback, codeVerifier: verifier)
        XCTAssertEqual(token, "gho_alice")
    }

    func testARedirectURIWithAQueryKeepsIt() async throws {
        let withQuery = callback + "?from=portal"
        var fields = request(state: "s")
        fields[1] = ("redirect_uri", withQuery)
        let response = try await LoopbackHTTP.post(port: github.port, "/login/oauth/authorize", form: fields + [("login", "alice")])
        let location = try XCTUnwrap(response.headers["location"])
        XCTAssertTrue(location.hasPrefix(withQuery + "&code="), location)
        XCTAssertTrue(location.hasSuffix("&state=s"), location)
    }

    func testAnUnknownUserOrABadRequestGetsNoCode() async throws {
        let unknown = try await LoopbackHTTP.post(
            port: github.port, "/login/oauth/authorize", form: request() + [("login", "mallory")])
        XCTAssertEqual(unknown.status, 200)
        XCTAssertNil(unknown.headers["location"])
        XCTAssertTrue(unknown.text.contains(#"id="unknown""#), unknown.text)

        var otherClient = request()
        otherClient[0] = ("client_id", "someone-else")
        var noChallenge = request()
        noChallenge[4] = ("code_challenge", "")
        var javascript = request()
        javascript[1] = ("redirect_uri", "javascript:alert(1)")
        for fields in [otherClient, noChallenge, request(method: "plain"), javascript] {
            let page = try await LoopbackHTTP.get(port: github.port, "/login/oauth/authorize?" + LoopbackHTTP.form(fields))
            XCTAssertEqual(page.status, 400, page.text)
            XCTAssertTrue(page.text.contains(#"id="error""#), page.text)
            let approval = try await LoopbackHTTP.post(
                port: github.port, "/login/oauth/authorize", form: fields + [("login", "alice")])
            XCTAssertEqual(approval.status, 400, approval.text)
            XCTAssertNil(approval.headers["location"])
        }
    }
}

/// One HTTP/1.1 exchange on a loopback connection (`Connection: close`), for the fake's pages:
/// the client under test speaks only GitHub's API, and a browser is not needed to read a form.
enum LoopbackHTTP {
    struct Response {
        var status: Int
        /// By lower-cased name.
        var headers: [String: String]
        var text: String
    }

    struct Failed: Error, CustomStringConvertible { var description: String }

    static func get(port: Int, _ target: String) async throws -> Response {
        try await exchange(port: port, "GET \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n")
    }

    static func post(port: Int, _ target: String, form fields: [(String, String)]) async throws -> Response {
        let body = form(fields)
        return try await exchange(
            port: port,
            "POST \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
                + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
    }

    /// `name=value&...`, every byte outside RFC 3986's unreserved set percent-encoded.
    static func form(_ fields: [(String, String)]) -> String {
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        return fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: unreserved) ?? "")" }
            .joined(separator: "&")
    }

    private static func exchange(port: Int, _ request: String) async throws -> Response {
        let bytes = Array(request.utf8)
        let received = try await withCheckedThrowingContinuation { continuation in
            // Blocking I/O on a Dispatch thread, never on the pool the fake's handlers need.
            DispatchQueue.global().async {
                continuation.resume(with: Result { try blockingExchange(port: port, bytes) })
            }
        }
        let text = String(decoding: received, as: UTF8.self)
        guard let headEnd = text.range(of: "\r\n\r\n") else { throw Failed(description: "no HTTP response: \(text)") }
        let lines = text[..<headEnd.lowerBound].components(separatedBy: "\r\n")
        let statusLine = lines[0].split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw Failed(description: "status line \(lines[0])") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Response(status: status, headers: headers, text: String(text[headEnd.upperBound...]))
    }

    private static func blockingExchange(port: Int, _ request: [UInt8]) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failed(description: "socket() failed") }
        defer { close(fd) }
        var wait = timeval(tv_sec: 10, tv_usec: 0)
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
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }  // 0: closed; -1: reset or timed out
            received += chunk[..<count]
        }
        return received
    }
}
