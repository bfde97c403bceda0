import BrokerCore
import Foundation
import Hummingbird

/// Who calls `/oauth/token`: the broker registers no clients and holds no client secrets, so
/// every caller is a public client (RFC 6749 section 2.1) that names itself, with `client_id` in
/// the form (`token_endpoint_auth_method: none`) or, as libraries configured for
/// `client_secret_basic` do, as the user of an `Authorization: Basic` header with an empty
/// password. A secret is refused rather than ignored: a caller sending one believes it is
/// authenticated, and it is not.
enum OAuthClientIdentification {
    /// The named client, or `nil` when the caller names none.
    /// - Throws: 400 `invalid_request` for a malformed id or two different ids; 401
    ///   `invalid_client` (with a `Basic` challenge, RFC 6749 section 5.2) for a secret.
    static func client(of request: Request, form: FormBody) throws -> ClientID? {
        let inForm = try form.optional("client_id").map(validated)
        guard let authorization = request.headers[.authorization] else { return inForm }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "basic" else {
            throw OAuthError(code: "invalid_request", "the token endpoint takes no Authorization but Basic with an empty password")
        }
        guard let decoded = Data(base64Encoded: String(parts[1])).flatMap({ String(data: $0, encoding: .utf8) }),
            let colon = decoded.firstIndex(of: ":")
        else {
            throw OAuthError(code: "invalid_request", "the Authorization header must be Basic base64(client_id:)")
        }
        guard decoded[decoded.index(after: colon)...].isEmpty else {
            var refusal = OAuthError(
                status: .unauthorized, code: "invalid_client",
                "this broker has no confidential clients: send client_id without a secret")
            refusal.challenge = "Basic realm=\"\(HTTPChallenge.realm)\""
            throw refusal
        }
        // RFC 6749 section 2.3.1: the id is form-encoded before it is base64-encoded.
        guard let name = String(decoded[..<colon]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        else {
            throw OAuthError(code: "invalid_request", "the client_id in the Authorization header is not form-encoded")
        }
        let inHeader = try validated(name)
        if let inForm, inForm != inHeader {
            throw OAuthError(code: "invalid_request", "the client_id of the form and of the Authorization header differ")
        }
        return inHeader
    }

    private static func validated(_ value: String) throws -> ClientID {
        do {
            return try ClientID(validating: value)
        } catch {
            throw OAuthError(code: "invalid_request", error.httpDetail)
        }
    }
}
