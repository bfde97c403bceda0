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

/// GitHub's OAuth web flow in progress (`__Host-broker_flow`, sealed as the device flow is):
/// the `state` the callback must bring back and the PKCE verifier of the code it brings.
struct WebFlowState: Codable, Sendable, Equatable {
    var state: String
    var verifier: String
    var expiresAt: Double
    var next: String?

    enum CodingKeys: String, CodingKey {
        case state = "s", verifier = "v", expiresAt = "e", next = "n"
    }
}

struct FlowSealer: Sendable {
    static let context = "broker portal device flow v1"
    static let webContext = "broker portal web flow v1"
    private let key: SealingKey

    init(portalKey: [UInt8]) {
        // 32 bytes of HMAC-SHA256: a valid AES-256 key by construction.
        key = try! SealingKey(bytes: Digest.hmacSHA256(key: portalKey, message: Array("seal".utf8)))
    }

    func seal(_ state: DeviceFlowState) throws -> String { try seal(state, context: Self.context) }

    func seal(_ state: WebFlowState) throws -> String { try seal(state, context: Self.webContext) }

    /// The device flow, or nil for anything not sealed by this broker's key as one.
    func open(_ cookie: String) -> DeviceFlowState? { open(cookie, as: DeviceFlowState.self, context: Self.context) }

    /// The web flow, or nil for anything not sealed by this broker's key as one.
    func openWebFlow(_ cookie: String) -> WebFlowState? { open(cookie, as: WebFlowState.self, context: Self.webContext) }

    private func seal(_ value: some Encodable, context: String) throws -> String {
        Base64URL.encode(Sealing.seal(Array(try JSONEncoder().encode(value)), under: key, context: context))
    }

    private func open<Value: Decodable>(_ cookie: String, as type: Value.Type, context: String) -> Value? {
        guard cookie.utf8.count <= 2048, let sealed = Base64URL.decode(cookie),
            let plain = try? Sealing.open(sealed, under: key, context: context)
        else { return nil }
        return try? JSONDecoder().decode(type, from: Data(plain))
    }
}
