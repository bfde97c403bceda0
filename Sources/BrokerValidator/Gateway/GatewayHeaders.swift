/// The request headers named `x-sliderule-*`: the identity a gateway vouches for, the ones
/// SlideRule's own client sends, and every other name, which only a gateway may set.
///
/// A node trusts what arrives under this prefix, so a client must never get a header of its own
/// making through under it. A gateway that can remove headers by pattern (HAProxy) removes every
/// `reservedNames(in:)` name; one that cannot (nginx, Traefik, Envoy with `broker gateway`)
/// replaces the two identity headers with the gateway's answer and refuses a request that
/// carries any other reserved name, as `broker gateway` does.
///
/// ```swift
/// let reserved = GatewayHeaders.reservedNames(in: ["Authorization", "X-SlideRule-Roles", "x-sliderule-client"])
/// // ["x-sliderule-roles"]
/// ```
public enum GatewayHeaders {
    /// The prefix, lower case; header names are compared without regard to case.
    public static let prefix = "x-sliderule-"
    /// The token's `sub`: the account the gateway vouches for.
    public static let account = "x-sliderule-account"
    /// The holder's roles at the gateway's cluster, space-separated.
    public static let orgRoles = "x-sliderule-org-roles"
    /// What the gateway answers with, and its proxy puts in place of whatever the client sent.
    public static let identity: Set<String> = [account, orgRoles]
    /// The headers SlideRule's Python client sends to a cluster on its own behalf (its version,
    /// the service it addresses, a request signature and its time). Nodes read them as the
    /// client's statements, never as identity, so they pass through unchanged.
    public static let client: Set<String> = [
        "x-sliderule-client", "x-sliderule-service", "x-sliderule-timestamp", "x-sliderule-signature",
    ]

    /// Whether a header of this name, sent by a client, must not reach the nodes: every
    /// `x-sliderule-*` name but the client's own.
    public static func isReserved(_ name: String) -> Bool {
        let lowered = name.lowercased()
        return lowered.hasPrefix(prefix) && !client.contains(lowered)
    }

    /// The reserved names among a request's header names, lower case, each once, in order.
    public static func reservedNames(in names: some Sequence<String>) -> [String] {
        var seen: Set<String> = []
        return names.map { $0.lowercased() }.filter { isReserved($0) && seen.insert($0).inserted }
    }
}
