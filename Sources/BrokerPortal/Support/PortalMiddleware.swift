import BrokerCore
import BrokerServer
import BrokerValidator
import HTTPTypes
import Hummingbird
import Logging

/// The headers of every portal answer, error pages included: no script may run, no site may
/// frame the pages, nothing leaks in a Referer, nothing is cached (pages show accounts). A 401
/// or 403 page says how to authenticate, as every route family's does (RFC 9110 section
/// 15.5.2): pages take no bearer token but a session cookie that `/signin` sets, which the
/// `Cookie` scheme of draft-broyer-http-cookie-auth describes.
struct PortalHeadersMiddleware: RouterMiddleware {
    typealias Context = BrokerRequestContext
    let challenge: String

    init(sessionCookie: String) {
        challenge = #"Cookie realm="\#(BearerChallenge.realm)", form-action="/signin", cookie-name="\#(sessionCookie)""#
    }

    static let contentSecurityPolicy =
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        response.headers[.xFrameOptions] = "DENY"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.referrerPolicy] = "no-referrer"
        response.headers[.crossOriginOpenerPolicy] = "same-origin"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        if response.status == .unauthorized || response.status == .forbidden, response.headers[.wwwAuthenticate] == nil {
            response.headers[.wwwAuthenticate] = challenge
        }
        return response
    }
}

/// Turns every failure of a portal route into a page (never JSON, never a stack trace): a
/// redirect to sign in, the 403 of a forged form, a broker error with its status and text
/// (the same text the API gives, escaped by the template), or a generic 500 with the request id.
struct PortalErrorMiddleware: RouterMiddleware {
    typealias Context = BrokerRequestContext
    let portal: Portal

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let redirect as PortalRedirect {
            return Portal.redirect(redirect.location, setCookies: redirect.setCookies)
        } catch PortalFailure.forgedForm {
            context.logger.debug("portal form refused: no valid CSRF token")
            return errorPage(
                .forbidden, "This form has expired",
                "This form was not sent from this site, or it has expired. Reload the page and try again.", request, context)
        } catch PortalFailure.badForm(let reason) {
            return errorPage(.badRequest, "The form could not be read", reason, request, context)
        } catch let error as BrokerError {
            if error.code.isServerFailure {
                context.logger.error("portal request failed", metadata: ["error": "\(error)"])
                return errorPage(
                    .init(code: error.code.httpStatus), "Something went wrong",
                    "The broker could not complete this request. Try again in a moment.", request, context, requestID: true)
            }
            var response = errorPage(
                .init(code: error.code.httpStatus), Self.heading(error), error.detail, request, context)
            if let retryAfter = error.retryAfter { response.headers[.retryAfter] = String(retryAfter) }
            return response
        } catch let error as StoreError where error.isUnavailable {
            context.logger.error("store unavailable", metadata: ["error": "\(error)"])
            var response = errorPage(
                .serviceUnavailable, "Temporarily unavailable", "The broker cannot reach its database. Try again in a moment.",
                request, context, requestID: true)
            response.headers[.retryAfter] = "5"
            return response
        } catch let error as any HTTPResponseError {
            switch error.status {
            case .notFound: return errorPage(.notFound, "Page not found", "There is no page at this address.", request, context)
            case .contentTooLarge:
                return errorPage(.contentTooLarge, "The form is too large", "The form sent more than this page accepts.", request, context)
            default:
                return errorPage(
                    error.status, "The request was refused", "The broker could not read this request.", request, context)
            }
        } catch {
            context.logger.error("portal request failed", metadata: ["error": "\(String(describing: type(of: error)))"])
            return errorPage(
                .internalServerError, "Something went wrong", "The broker could not complete this request. Try again in a moment.",
                request, context, requestID: true)
        }
    }

    static func heading(_ error: BrokerError) -> String {
        switch error.code.httpStatus {
        case 401: "Sign in again"
        case 403: "Not allowed"
        case 404: "Not found"
        case 409: "That did not work"
        case 429: "Too many attempts"
        default: "That did not work"
        }
    }

    func errorPage(
        _ status: HTTPResponse.Status, _ heading: String, _ message: String, _ request: Request, _ context: Context,
        requestID: Bool = false
    ) -> Response {
        let chrome = PageChrome(
            siteName: portal.siteName, title: heading, stylesheet: PortalRenderer.stylesheetPath, signedInAs: nil, signOutCSRF: nil,
            notice: nil)
        // The API's texts are clauses ("only owners and admins of org1 may …"): a page shows a sentence.
        var sentence = message.prefix(1).uppercased() + message.dropFirst()
        if let last = sentence.last, !".!?".contains(last) { sentence += "." }
        let view = ErrorView(
            chrome: chrome, heading: heading, message: sentence, requestID: requestID ? context.requestID : nil,
            backHref: "/", backLabel: "Back to the start page")
        return portal.renderer.page("error", view, status: status)
    }
}
