import BrokerCore
import BrokerCrypto

/// The token every state-changing form carries (`<input type=hidden name=csrf>`), checked on
/// every POST before anything else happens. It is an HMAC, so nothing is stored: keyed with the
/// portal's server secret (shared by replicas), over the session's id hash when signed in, or
/// over the pre-session cookie for the anonymous sign-in form. Another session's token, an old
/// session's token after sign-in (the id changes) and a forged one are all refused.
struct CSRFGuard: Sendable {
    private let key: [UInt8]

    init(portalKey: [UInt8]) {
        // A key of its own, derived, so the server secret can serve other purposes later.
        key = Digest.hmacSHA256(key: portalKey, message: Array("csrf".utf8))
    }

    func token(for session: PortalSession) -> String {
        token(binding: "s\0" + session.idHash)
    }

    func token(forPreSession value: String) -> String {
        token(binding: "p\0" + value)
    }

    private func token(binding: String) -> String {
        Base64URL.encode(Digest.hmacSHA256(key: key, message: Array(binding.utf8)))
    }

    /// Compares in constant time.
    static func matches(_ presented: String?, _ expected: String) -> Bool {
        guard let presented else { return false }
        return constantTimeEquals(Array(presented.utf8), Array(expected.utf8))
    }
}
