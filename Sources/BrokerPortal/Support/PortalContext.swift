import BrokerCore
import BrokerCrypto
import BrokerServer
import Foundation
import HTTPTypes
import Hummingbird

/// What every portal handler shares: the services, the cookies, the renderer, and the steps
/// every page takes (find the session, check a form, build the layout).
struct Portal: Sendable {
    let services: BrokerServices
    let cookies: PortalCookies
    let renderer: PortalRenderer
    let siteName: String

    init(services: BrokerServices) {
        self.services = services
        cookies = PortalCookies(secure: !services.configuration.portalInsecureCookies)
        renderer = .shared
        siteName = "Broker"
    }

    func csrf() throws -> CSRFGuard { CSRFGuard(portalKey: try services.portalKey.get()) }

    /// The browser's live session, if its cookie names one.
    func session(of request: Request) async throws -> PortalSession? {
        guard let cookie = cookies.value(cookies.session, in: request) else { return nil }
        return try await services.portalSessions.resume(cookie: cookie)
    }

    /// The session, or a redirect to the sign-in page that comes back here afterwards.
    func requireSession(of request: Request) async throws -> PortalSession {
        if let session = try await session(of: request) { return session }
        let here = request.uri.path
        var location = "/signin?next=" + (here.addingPercentEncoding(withAllowedCharacters: .portalQueryValue) ?? "%2F")
        if cookies.value(cookies.session, in: request) != nil { location += "&notice=\(Notice.sessionEnded.rawValue)" }
        // An ended session's cookie is removed, so the sign-in page starts clean.
        throw PortalRedirect(location: location, setCookies: [cookies.clearing(cookies.session)])
    }

    /// Reads a POSTed form and checks that this site sent it: the browser's `Sec-Fetch-Site`
    /// (when it sends one) and the CSRF token bound to `expected`. Nothing else runs before.
    func form(of request: inout Request, expecting expected: String) async throws -> URLEncodedForm {
        if let site = request.headers[.secFetchSite], site == "cross-site" {
            throw PortalFailure.forgedForm
        }
        let form: URLEncodedForm
        do {
            form = try await URLEncodedForm.read(&request)
        } catch let malformed as URLEncodedForm.Malformed {
            throw PortalFailure.badForm(malformed.reason)
        }
        guard CSRFGuard.matches(form.parameters["csrf"], expected) else { throw PortalFailure.forgedForm }
        return form
    }

    /// The browser's pre-session cookie (what an anonymous form's CSRF token is bound to), and
    /// the `Set-Cookie` that gives it one when it has none.
    func preSession(of request: Request) -> (value: String, setCookie: String?) {
        if let existing = cookies.value(cookies.preSession, in: request), existing.utf8.count == 22 { return (existing, nil) }
        let value = Base64URL.encode(SecureRandom.bytes(16))
        return (value, cookies.setting(cookies.preSession, value))
    }

    func chrome(_ title: String, session: PortalSession?, notice: String? = nil) throws -> PageChrome {
        PageChrome(
            siteName: siteName, title: title, stylesheet: PortalRenderer.stylesheetPath,
            signedInAs: session?.user.username, signOutCSRF: try session.map { try csrf().token(for: $0) },
            notice: notice.flatMap(Notice.init(rawValue:))?.text, showAdmin: session?.user.isAdmin ?? false)
    }

    /// 303 See Other: the answer to every form (so a reload does not send it again).
    static func redirect(_ location: String, setCookies: [String] = []) -> Response {
        var headers: HTTPFields = [.location: location]
        for cookie in setCookies { headers.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: .seeOther, headers: headers)
    }

    /// One form of a signed-in page: the session and its CSRF token, then `work` as the holder
    /// (the audit context of the request), then 303 to `location`. A refusal `onPage` accepts is
    /// shown by `refused` (the page again, the error beside its form); any other error goes to
    /// ``PortalErrorMiddleware`` (a 403 or 404 page).
    func submit(
        _ request: Request, _ context: BrokerRequestContext, redirect location: String,
        refusalsOnPage onPage: (BrokerError) -> Bool = { _ in true },
        _ work: (URLEncodedForm, AdministrativeActor) async throws -> Void,
        refused: (PortalSession, BrokerError) async throws -> Response
    ) async throws -> Response {
        var request = request
        let session = try await requireSession(of: request)
        let form = try await form(of: &request, expecting: try csrf().token(for: session))
        let actor = AdministrativeActor(user: session.user, context: auditContext(request, context))
        do {
            try await work(form, actor)
        } catch let error as BrokerError where !error.code.isServerFailure && onPage(error) {
            return try await refused(session, error)
        }
        return Self.redirect(location)
    }

    /// The answer to every sign-in of a browser (password, GitHub, sign-up): the new session's
    /// cookie, the pre-session's and any `clearing` cookies removed, 303 to `location`. A new id
    /// at every sign-in: a session the browser held before (perhaps planted) ends, reason
    /// `replaced`.
    func signedIn(
        _ started: PortalSessionStart, _ request: Request, _ context: BrokerRequestContext, to location: String,
        clearing: [String] = []
    ) async throws -> Response {
        if let previous = try await session(of: request), previous.family.id != started.session.family.id {
            try await services.portalSessions.end(previous, reason: "replaced", context: auditContext(request, context))
        }
        return Self.redirect(
            location,
            setCookies: [cookies.setting(cookies.session, started.cookie), cookies.clearing(cookies.preSession)]
                + clearing.map(cookies.clearing))
    }

    /// A refusal shown on a page: `Retry-After` when the error has one.
    static func refusalHeaders(_ error: BrokerError) -> HTTPFields {
        var headers: HTTPFields = [:]
        if let retryAfter = error.retryAfter { headers[.retryAfter] = String(retryAfter) }
        return headers
    }

    /// Refusals a manager's or admin's page shows beside its forms: not the 403 of someone who
    /// may not be there, nor a 404 of what is not there (their error pages say it).
    static func shownOnManagerPages(_ error: BrokerError) -> Bool {
        error.code != .forbidden && error.code != .notFound
    }

    func auditContext(_ request: Request, _ context: BrokerRequestContext) -> AuditContext {
        services.auditContext(request, context)
    }

    /// Where a session started, for the account page's session list.
    func origin(_ request: Request, _ context: BrokerRequestContext) -> SessionOrigin {
        SessionOrigin(clientIP: auditContext(request, context).clientIP, userAgent: request.headers[.userAgent])
    }
}

extension HTTPField.Name {
    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!
    static let xFrameOptions = HTTPField.Name("X-Frame-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    static let crossOriginOpenerPolicy = HTTPField.Name("Cross-Origin-Opener-Policy")!
}

extension CharacterSet {
    /// Unreserved characters only: everything else in a query value is percent-encoded.
    static let portalQueryValue = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}

/// A redirect a helper decides on (sign in first), answered by ``PortalErrorMiddleware``.
struct PortalRedirect: Error {
    var location: String
    var setCookies: [String] = []
}

/// The portal's own refusals, shown as pages.
enum PortalFailure: Error {
    /// No, a wrong, or another session's CSRF token, or a cross-site form.
    case forgedForm
    /// Not a form this broker reads (not urlencoded, a parameter twice, control characters).
    case badForm(String)
}
