/// The OAuth client a session's tokens are issued to: their `client_id` claim (RFC 9068 section
/// 2.2). The broker registers no clients: the two SlideRule protocols name theirs by
/// configuration (`sliderule_client_id`), a caller of `/oauth/token` by the `client_id` it
/// sends, and the broker's own sessions (admin API, portal) are ``broker``. A session keeps its
/// client: its refresh tokens are renewed only for that client (RFC 6749 section 6).
///
/// ```swift
/// let client = try ClientID(validating: "my-notebook")   // a caller's client_id
/// ClientID.broker.rawValue                               // "broker"
/// ```
public struct ClientID: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    /// The longest client id accepted; long enough for a URL-shaped id.
    public static let maximumLength = 255

    /// The broker's own sessions: broker session tokens and the portal's browser sessions.
    public static let broker = ClientID(stored: "broker")

    /// The SlideRule clients' id when nothing is configured.
    public static let slideRuleDefault = ClientID(stored: "sliderule")

    /// A client id from a request or a configuration: 1 to ``maximumLength`` printable ASCII
    /// characters without spaces (RFC 6749 appendix A.1 allows spaces; the broker refuses them so
    /// that an id is one word in the audit log and in headers).
    public init(validating value: String) throws(BrokerError) {
        guard !value.isEmpty, value.utf8.count <= Self.maximumLength,
            value.utf8.allSatisfy({ (0x21...0x7E).contains($0) })
        else {
            throw BrokerError(
                .invalidRequest, "client_id must be 1 to \(Self.maximumLength) printable ASCII characters without spaces")
        }
        rawValue = value
    }

    /// A value the broker itself wrote: a constant, or one read back from the store, which
    /// holds only validated ids.
    public init(stored value: String) {
        rawValue = value
    }

    public var description: String { rawValue }
}
