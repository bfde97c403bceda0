import Foundation

/// One of the generation-1 client's scaling calls (clients 4.x, `sliderule/session.py`), as the
/// broker understands it before handing it to the provisioner: which organization's cluster, and
/// what is asked of it.
///
/// ```swift
/// let nodes = try ScalingCall.count("3", named: "the number of nodes")
/// let call = ScalingCall(organization: "org1", operation: .setDesiredNodes(nodes, minutes: 15))
/// call.path          // "/api/desired_org_num_nodes_ttl/org1/3/15/"
/// call.auditReason   // "desired_nodes=3 ttl=15"
/// ```
public struct ScalingCall: Sendable, Equatable {
    public enum Operation: Sendable, Equatable {
        /// `GET /api/org_num_nodes/<org>/`: the cluster's bounds and size (`min_nodes`, `max_nodes`, ...).
        case readNodeCounts
        /// `PUT /api/desired_org_num_nodes/<org>/<n>/` without a time to live (`minutes` nil), or
        /// `POST /api/desired_org_num_nodes_ttl/<org>/<n>/<ttl>/` with one, in minutes.
        case setDesiredNodes(Int, minutes: Int?)
        /// `GET /api/org_ip_adr/<org>/`: the address of the cluster's entry point.
        case readAddress
    }

    public var organization: String
    public var operation: Operation

    public init(organization: String, operation: Operation) {
        self.organization = organization
        self.operation = operation
    }

    /// Whether the call asks for a change (it is then audited as `cluster.scale`).
    public var changesState: Bool {
        if case .setDesiredNodes = operation { return true }
        return false
    }

    /// What a `cluster.scale` line says was asked: `desired_nodes=N`, and ` ttl=T` with a time to live.
    public var auditReason: String? {
        guard case .setDesiredNodes(let nodes, let minutes) = operation else { return nil }
        return "desired_nodes=\(nodes)" + (minutes.map { " ttl=\($0)" } ?? "")
    }

    /// The call's path as the provisioner receives it: the generation-1 path, spelled one way
    /// whatever the client sent (decoded organization, plain decimal numbers, trailing slash).
    public var path: String {
        let organization = Self.pathSegment(self.organization)
        switch operation {
        case .readNodeCounts: return "/api/org_num_nodes/\(organization)/"
        case .setDesiredNodes(let nodes, nil): return "/api/desired_org_num_nodes/\(organization)/\(nodes)/"
        case .setDesiredNodes(let nodes, let minutes?):
            return "/api/desired_org_num_nodes_ttl/\(organization)/\(nodes)/\(minutes)/"
        case .readAddress: return "/api/org_ip_adr/\(organization)/"
        }
    }

    /// The largest number of nodes or minutes a call may carry: far above any cluster or lease,
    /// and small enough for any provisioner's integers. The provisioner judges what it allows.
    public static let maximumCount = 1_000_000

    /// A number of nodes or minutes from a path segment: decimal digits only (no sign, no
    /// exponent, no fraction, no spaces), at most ``maximumCount``.
    /// - Throws: 400 ``ErrorCode/invalidRequest`` naming what was expected, never echoing the
    ///   segment.
    public static func count(_ text: String, named name: String) throws -> Int {
        guard !text.isEmpty, text.utf8.count <= 7, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = Int(text), value <= maximumCount
        else {
            throw BrokerError(.invalidRequest, "\(name) must be a whole number in 0...\(maximumCount), written in digits")
        }
        return value
    }

    /// Organization names are unreserved characters already (``NamePolicy``); anything else a
    /// client sends is escaped rather than trusted, though it never gets this far (the token's
    /// organization must be the path's).
    private static func pathSegment(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)..<Unicode.Scalar(0x80)))
        allowed.insert(charactersIn: "-._~")
        let escaped = text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
        // `.` and `..` are unreserved but would move up the provisioner's path.
        return escaped.allSatisfy { $0 == "." } ? escaped.replacingOccurrences(of: ".", with: "%2E") : escaped
    }
}
