import BrokerCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import XCTest

/// A browser for the portal's HTTP tests: keeps cookies as a browser would (by name, removed by
/// `Max-Age=0`), follows nothing by itself, and reads the CSRF token out of the last page.
final class PortalBrowser: @unchecked Sendable {
    let client: any TestClientProtocol
    var cookies: [String: String] = [:]
    var lastPage = ""
    var userAgent = "PortalBrowser/1.0 (tests)"

    init(_ client: any TestClientProtocol) {
        self.client = client
    }

    struct Page {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var text: String

        var location: String? { headers[.location] }
        var setCookies: [String] { headers[values: .setCookie] }
    }

    var cookieHeader: String { cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }

    @discardableResult
    func get(_ path: String, headers extra: HTTPFields = [:]) async throws -> Page {
        try await send(path, method: .get, body: nil, headers: extra)
    }

    /// POSTs a form; `csrf` defaults to the token of the last page shown.
    @discardableResult
    func post(_ path: String, _ fields: [(String, String)], csrf: String?? = .none, headers extra: HTTPFields = [:]) async throws -> Page {
        var all = fields
        let token: String? = csrf ?? Self.csrfToken(in: lastPage)
        if let token { all.insert(("csrf", token), at: 0) }
        let body = all.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
        var headers = extra
        headers[.contentType] = "application/x-www-form-urlencoded"
        return try await send(path, method: .post, body: body, headers: headers)
    }

    func send(_ path: String, method: HTTPRequest.Method, body: String?, headers extra: HTTPFields) async throws -> Page {
        var headers = extra
        if !cookies.isEmpty, headers[.cookie] == nil { headers[.cookie] = cookieHeader }
        if headers[.userAgent] == nil { headers[.userAgent] = userAgent }
        let page = try await client.execute(
            uri: path, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }
        ) { response in
            Page(status: response.status, headers: response.headers, text: String(buffer: response.body))
        }
        for cookie in page.setCookies {
            let pair = cookie.split(separator: ";", maxSplits: 1)[0]
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            if cookie.contains("Max-Age=0") { cookies[name] = nil } else { cookies[name] = parts.count > 1 ? String(parts[1]) : "" }
        }
        if page.headers[.contentType]?.hasPrefix("text/html") == true { lastPage = page.text }
        return page
    }

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")) ?? ""
    }

    static func csrfToken(in html: String) -> String? {
        guard let range = html.range(of: #"name="csrf" value="([^"]*)""#, options: .regularExpression) else { return nil }
        let match = html[range]
        return match.split(separator: "\"")[3].description
    }

    /// Signs in with the sign-in form and checks the 303 to `next`.
    func signIn(_ username: String, _ password: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        try await get("/signin")
        let page = try await post("/signin", [("username", username), ("password", password)])
        XCTAssertEqual(page.status, .seeOther, page.text, file: file, line: line)
        XCTAssertEqual(page.location, "/account", file: file, line: line)
    }
}

extension ServerHarness {
    func withPortal<Value: Sendable>(_ body: @Sendable (PortalBrowser) async throws -> Value) async throws -> Value {
        try await withClient(portal: true) { client in try await body(PortalBrowser(client)) }
    }

    func auditLines() throws -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: services.configuration.auditLogPath, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }
}
