/// The portal's cookies and how they are read and written.
///
/// - `__Host-broker_session`: the session (``PortalSessions``), 32 random bytes.
/// - `__Host-broker_pre`: a pre-session, set when a sign-in form is shown, so that the anonymous
///   form's CSRF token is bound to this browser.
/// - `__Host-broker_flow`: a GitHub device flow in progress, sealed (``FlowSealer``), 15 min at most.
///
/// All are `Path=/; Secure; HttpOnly; SameSite=Lax` and session cookies (no `Max-Age`: they end
/// with the browser; the server enforces the timeouts). The `__Host-` prefix makes the browser
/// refuse them from a sibling domain or over plain http. `portal_insecure_cookies` (development
/// on loopback only) drops the prefix and `Secure`.
///
/// Nothing HTTP in this file, so that the fuzz target FuzzPortalForm compiles it as it is.
struct PortalCookies: Sendable {
    let secure: Bool

    init(secure: Bool) {
        self.secure = secure
    }

    var session: String { secure ? "__Host-broker_session" : "broker_session" }
    var preSession: String { secure ? "__Host-broker_pre" : "broker_pre" }
    /// A GitHub device flow in progress (``FlowSealer``), with a `Max-Age`.
    var flow: String { secure ? "__Host-broker_flow" : "broker_flow" }

    /// The value of cookie `name`, if the `Cookie` headers carry it exactly once: two cookies of
    /// one name (one planted by a sibling host, say) count as none, as does an empty value.
    static func value(_ name: String, inCookieHeaders headers: [String]) -> String? {
        var found: Substring?
        var count = 0
        for header in headers {
            for pair in header.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " || $0 == "\t" }
                guard let equals = trimmed.firstIndex(of: "=") else { continue }
                if trimmed[..<equals] == name {
                    count += 1
                    var value = trimmed[trimmed.index(after: equals)...]
                    while let last = value.last, last == " " || last == "\t" { value = value.dropLast() }
                    found = value
                }
            }
        }
        guard count == 1, let found, !found.isEmpty else { return nil }
        return String(found)
    }

    /// `Set-Cookie` for `name=value`; `value` is base64url, never anything to escape.
    func setting(_ name: String, _ value: String, maxAge: Int? = nil) -> String {
        "\(name)=\(value); Path=/\(maxAge.map { "; Max-Age=\($0)" } ?? "")\(secure ? "; Secure" : ""); HttpOnly; SameSite=Lax"
    }

    /// `Set-Cookie` that removes `name` from the browser.
    func clearing(_ name: String) -> String {
        "\(name)=; Path=/; Max-Age=0\(secure ? "; Secure" : ""); HttpOnly; SameSite=Lax"
    }
}
