import BrokerCore
import BrokerCrypto
import Foundation

/// What the broker tells OAuth and OpenID libraries about itself (RFC 8414, and the same
/// endpoints in OpenID Connect Discovery). Only what exists is advertised:
///
/// - no `authorization_endpoint`: third-party clients get tokens at the token endpoint alone
///   (token exchange of a GitHub token, refresh), so no response type is supported and
///   `response_types_supported`, which RFC 8414 requires, is the empty array; no
///   `code_challenge_methods_supported` either, since PKCE applies to the authorization code;
/// - token exchange only when GitHub logins are enabled (otherwise that grant answers 503);
/// - public clients only (`none`): the broker registers no clients and holds no secrets;
///   introspection takes a broker session token (`Bearer`, from the Access Token Types registry
///   RFC 8414 section 2 allows there);
/// - no `id_token_*` fields and no `claims_supported`: the broker issues no ID tokens and has no
///   UserInfo endpoint. The access tokens' claims are RFC 9068's (README, "Tokens").
struct AuthorizationServerMetadata: Sendable {
    var issuer: String
    var grantTypes: [String]

    init(configuration: BrokerConfiguration, githubEnabled: Bool) {
        issuer = configuration.issuer
        grantTypes = [OAuthGrant.refreshToken]
        if githubEnabled { grantTypes.append(OAuthGrant.tokenExchange) }
    }

    /// `/.well-known/oauth-authorization-server` (RFC 8414 section 3).
    func authorizationServerDocument() -> [UInt8] {
        document(openID: false)
    }

    /// `/.well-known/openid-configuration`: the same, and `subject_types_supported`, which
    /// describes the `sub` of every token (one value per account for every client).
    func openIDDocument() -> [UInt8] {
        document(openID: true)
    }

    /// Where RFC 8414 section 3.1 puts the document of an issuer with a path: the well-known
    /// segment before the path (`/.well-known/oauth-authorization-server/<path>`); `nil` for an
    /// issuer without one.
    var pathSuffix: String? {
        guard let path = URL(string: issuer)?.path, !path.isEmpty, path != "/" else { return nil }
        return String(path.drop { $0 == "/" })
    }

    private func document(openID: Bool) -> [UInt8] {
        var json = JSONWriter(capacity: 1024)
        json.beginObject()
        json.field("issuer", issuer)
        json.field("token_endpoint", issuer + "/oauth/token")
        json.field("jwks_uri", issuer + "/.well-known/jwks.json")
        json.field("response_types_supported", strings: [])
        json.field("grant_types_supported", strings: grantTypes)
        json.field("token_endpoint_auth_methods_supported", strings: ["none"])
        json.field("revocation_endpoint", issuer + "/oauth/revoke")
        json.field("revocation_endpoint_auth_methods_supported", strings: ["none"])
        json.field("introspection_endpoint", issuer + "/oauth/introspect")
        json.field("introspection_endpoint_auth_methods_supported", strings: ["Bearer"])
        if openID { json.field("subject_types_supported", strings: ["public"]) }
        json.endObject()
        return json.bytes
    }
}

/// The grant type names of RFC 6749 and its extensions the token endpoint takes.
enum OAuthGrant {
    static let refreshToken = "refresh_token"
    /// RFC 8693.
    static let tokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
}
