import BrokerCrypto
import Foundation

/// A GitHub device flow in progress, kept by the browser in `__Host-broker_flow`, sealed
/// (AES-256-GCM under a key derived from `portal_key`, so every replica opens it): GitHub's
/// device code never leaves the broker in clear, and nobody can forge or edit a flow. Nothing
/// is stored on the server; the flow ends with the cookie (15 minutes at most).
struct DeviceFlowState: Codable, Sendable, Equatable {
    var deviceCode: String
    var userCode: String
    var verificationURI: String
    /// Seconds between polls: GitHub's, raised by its `slow_down`.
    var interval: Int
    /// When GitHub was last asked (seconds since 1970); a page shown sooner does not ask.
    var lastPoll: Double
    var expiresAt: Double
    /// Where the sign-in goes afterwards (a ``SafeRedirect`` path).
    var next: String?
    var purpose: Purpose
    /// For ``Purpose/link``: the id hash of the session that started it, which must end it.
    var sessionIDHash: String?

    /// What the approval is for.
    enum Purpose: String, Codable, Sendable {
        case signIn = "in"
        case signUp = "up"
        case link = "link"
    }

    enum CodingKeys: String, CodingKey {
        case deviceCode = "d", userCode = "u", verificationURI = "v", interval = "i", lastPoll = "l", expiresAt = "e"
        case next = "n", purpose = "p", sessionIDHash = "s"
    }
}

struct FlowSealer: Sendable {
    static let context = "broker portal device flow v1"
    private let key: SealingKey

    init(portalKey: [UInt8]) {
        // 32 bytes of HMAC-SHA256: a valid AES-256 key by construction.
        key = try! SealingKey(bytes: Digest.hmacSHA256(key: portalKey, message: Array("seal".utf8)))
    }

    func seal(_ state: DeviceFlowState) throws -> String {
        Base64URL.encode(Sealing.seal(try JSONEncoder().encode(state).map { $0 }, under: key, context: Self.context))
    }

    /// The flow, or nil for anything not sealed by this broker's key.
    func open(_ cookie: String) -> DeviceFlowState? {
        guard cookie.utf8.count <= 2048, let sealed = Base64URL.decode(cookie),
            let plain = try? Sealing.open(sealed, under: key, context: Self.context)
        else { return nil }
        return try? JSONDecoder().decode(DeviceFlowState.self, from: Data(plain))
    }
}
