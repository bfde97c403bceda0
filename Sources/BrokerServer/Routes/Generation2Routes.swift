import BrokerCore
import BrokerCrypto
import Foundation
import Hummingbird

/// The generation-2 SlideRule login API (`login.<domain>`, clients 5.0.3 and later) and the
/// generation-1 GitHub login. Generation-2 answers are `{"status":"success", ...}` or
/// `{"status":"error","error":"<code>","detail":"<text>"}`.
struct Generation2Routes<Context: RemoteAddressRequestContext> {
    let services: BrokerServices

    func register(on router: Router<Context>) {
        router.post("auth/github/pat") { request, context in
            await Self.generation2Errors(request) { try await pat(request, context) }
        }
        router.post("auth/github/device") { request, context in
            await Self.generation2Errors(request) { try await device(request, context) }
        }
        router.post("auth/github/device/poll") { request, context in
            await Self.generation2Errors(request) { try await poll(request, context) }
        }
        router.get("auth/refresh") { request, context in
            await Self.generation2Errors(request) { try await refresh(request, context) }
        }
        router.post("api/org_token_github") { request, context in try await generation1(request, context) }
    }

    var github: GitHubLoginService {
        get throws {
            guard let github = services.github else {
                throw BrokerError(.unavailable, "GitHub logins are not enabled on this broker")
            }
            return github
        }
    }

    func pat(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let body = try await JSONRequestBody.read(&request)
        let pat = try body.string("pat")
        let issued = try await github.generation2Login(
            githubToken: pat, method: .githubPAT, context: services.auditContext(request, context))
        return Self.success(issued)
    }

    func device(_ request: Request, _ context: Context) async throws -> Response {
        let code = try await github.startDeviceFlow(clientIP: services.auditContext(request, context).clientIP)
        return JSONResponses.make(.ok) { json in
            json.beginObject()
            json.key("device_code"); json.string(code.deviceCode)
            json.key("user_code"); json.string(code.userCode)
            json.key("verification_uri"); json.string(code.verificationURI)
            json.key("verification_uri_complete")
            json.string(code.verificationURIComplete ?? "\(code.verificationURI)?user_code=\(code.userCode)")
            json.key("expires_in"); json.int(Int64(code.expiresIn))
            json.key("interval"); json.int(Int64(code.interval))
            json.endObject()
        }
    }

    /// 202 while GitHub waits for the user, 200 with the token once approved, 400 when the
    /// code expired or was denied.
    func poll(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let body = try await JSONRequestBody.read(&request)
        let deviceCode = try body.string("device_code")
        let outcome = try await github.pollDeviceFlow(deviceCode: deviceCode, context: services.auditContext(request, context))
        switch outcome {
        case .authorized(let issued):
            return Self.success(issued)
        case .pending(let reason, let interval):
            return JSONResponses.make(.accepted) { json in
                json.beginObject()
                json.key("status"); json.string("pending")
                json.key("error"); json.string(reason)
                json.key("interval"); json.int(Int64(interval))
                json.endObject()
            }
        case .failed(let error):
            return JSONResponses.make(.badRequest) { json in
                json.beginObject()
                json.key("status"); json.string("error")
                json.key("error"); json.string(error)
                json.key("detail"); json.string(Self.deviceFailureText(error))
                json.endObject()
            }
        }
    }

    static func deviceFailureText(_ error: String) -> String {
        switch error {
        case "expired_token": "the device code has expired; start again"
        case "access_denied": "the user denied the authorization"
        case "incorrect_device_code": "unknown device code"
        default: "GitHub refused the device authorization"
        }
    }

    func refresh(_ request: Request, _ context: Context) async throws -> Response {
        let bearer = try request.bearerToken()
        let issued = try await github.generation2Refresh(bearer: bearer, context: services.auditContext(request, context))
        return JSONResponses.make(.ok) { json in
            json.beginObject()
            json.key("token"); json.string(issued.token)
            json.key("exp"); json.int(issued.claims.expiresAt)
            json.endObject()
        }
    }

    func generation1(_ request: Request, _ context: Context) async throws -> Response {
        var request = request
        let body = try await JSONRequestBody.read(&request)
        let organization = try body.string("org_name")
        let githubToken = try body.string("access_token")
        let bundle = try await github.generation1Login(
            githubToken: githubToken, organization: organization, context: services.auditContext(request, context))
        return Generation1Routes<Context>.bundleResponse(bundle)
    }

    /// `{"status":"success","token":...,"metadata":{claims}}`: the client caches the whole answer
    /// and reuses it while `metadata.exp` is in the future.
    static func success(_ issued: TokenIssuer.IssuedToken) -> Response {
        var json = JSONWriter(capacity: 1024)
        json.beginObject()
        json.key("status"); json.string("success")
        json.key("token"); json.string(issued.token)
        json.key("metadata")
        let claims = issued.claims.encoded()
        var bytes = json.bytes
        bytes += claims
        bytes.append(UInt8(ascii: "}"))
        return Response(
            status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Answers every failure of a generation-2 route in that family's error shape.
    static func generation2Errors(_ request: Request, _ body: () async throws -> Response) async -> Response {
        let error: BrokerError
        do {
            return try await body()
        } catch let brokerError as BrokerError {
            error = brokerError
        } catch let storeError as StoreError where storeError.isUnavailable {
            error = BrokerError(storeUnavailable: storeError)
        } catch let httpError as any HTTPResponseError {
            error = ErrorMiddleware<BrokerRequestContext>.brokerError(for: httpError.status, path: "")
        } catch {
            return failure(BrokerError(.internalError, "internal error"), for: request)
        }
        return failure(error, for: request)
    }

    static func failure(_ error: BrokerError, for request: Request) -> Response {
        var response = JSONResponses.make(.init(code: error.code.httpStatus)) { json in
            json.beginObject()
            json.key("status"); json.string("error")
            json.key("error"); json.string(error.code.rawValue)
            json.key("detail"); json.string(error.httpDetail)
            json.endObject()
        }
        if let seconds = error.retryAfter { response.headers[.retryAfter] = String(max(1, seconds)) }
        if let challenge = HTTPChallenge.header(for: error, request: request) {
            response.headers[.wwwAuthenticate] = challenge
        }
        return response
    }
}
