import BrokerCrypto

/// GitHub's OAuth web flow (RFC 6749 section 4.1) with PKCE (RFC 7636, S256), as the portal
/// drives it: send the browser to ``authorizeURL(webURL:clientID:redirectURI:state:codeChallenge:)``
/// with the challenge of a fresh verifier, then give the code GitHub returns, with that verifier,
/// to ``GitHubAPI/exchangeAuthorizationCode(code:redirectURI:codeVerifier:)``. Here rather than in
/// the libcurl client so that the portal, which knows only ``GitHubAPI``, can build the URL.
///
/// ```swift
/// let verifier = GitHubWebFlow.newCodeVerifier()   // kept, sealed, until the callback
/// let location = GitHubWebFlow.authorizeURL(
///     webURL: configuration.githubWebURL, clientID: configuration.githubClientID,
///     redirectURI: configuration.issuer + "/signin/github/callback", state: state,
///     codeChallenge: GitHubWebFlow.codeChallenge(for: verifier))
/// // ... and at the callback:
/// let token = try await api.exchangeAuthorizationCode(code: code, redirectURI: redirectURI, codeVerifier: verifier)
/// ```
public enum GitHubWebFlow {
    /// The scope asked for: what the broker reads (organization memberships and teams), the
    /// device flow's too.
    public static let scope = "read:org"

    /// `{webURL}/login/oauth/authorize?client_id=…&redirect_uri=…&scope=read:org&state=…&code_challenge=…&code_challenge_method=S256`,
    /// every value percent-encoded (only RFC 3986's unreserved characters kept), so that no
    /// value can add a parameter or end the query. A trailing `/` of `webURL` is dropped.
    public static func authorizeURL(
        webURL: String, clientID: String, redirectURI: String, state: String, codeChallenge: String
    ) -> String {
        var base = webURL
        while base.hasSuffix("/") { base.removeLast() }
        let query = [
            ("client_id", clientID), ("redirect_uri", redirectURI), ("scope", scope), ("state", state),
            ("code_challenge", codeChallenge), ("code_challenge_method", "S256"),
        ]
        return base + "/login/oauth/authorize?"
            + query.map { "\($0.0)=\(percentEncoded($0.1))" }.joined(separator: "&")
    }

    /// The S256 challenge of `verifier` (RFC 7636 section 4.2): base64url, unpadded, of the
    /// SHA-256 of its ASCII text.
    public static func codeChallenge(for verifier: String) -> String {
        Base64URL.encode(Digest.sha256(Array(verifier.utf8)))
    }

    /// A new verifier: 32 random bytes in base64url, 43 characters, the shortest RFC 7636
    /// section 4.1 allows and all of them unreserved.
    public static func newCodeVerifier() -> String {
        Base64URL.encode(SecureRandom.bytes(32))
    }

    /// Every byte outside RFC 3986's unreserved set (`A-Z a-z 0-9 - . _ ~`) as `%XX`.
    static func percentEncoded(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".unicodeScalars)
        var out = String.UnicodeScalarView()
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(Unicode.Scalar(byte))
            default:
                out.append("%")
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            }
        }
        return String(out)
    }
}
