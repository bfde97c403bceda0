/// One HTTP request handed to the libcurl loop.
struct CurlRequest: Sendable {
    enum Method: Sendable {
        case get
        case post(body: [UInt8])
    }

    var method: Method
    /// Absolute URL; already validated against the configured bases.
    var url: String
    /// Complete header lines (`Name: value`), in the order sent.
    var headers: [String]
    var connectTimeoutMilliseconds: Int
    var totalTimeoutMilliseconds: Int
}

/// What came back: the status, the headers of the final response, and the (capped) body.
struct CurlResponse: Sendable {
    var status: Int
    var headers: ResponseHeaders
    var body: [UInt8]
}

/// Response headers with case-insensitive lookup; repeated fields keep every value.
struct ResponseHeaders: Sendable {
    private var fields: [String: [String]] = [:]

    init() {}

    init(_ pairs: [(String, String)]) {
        for (name, value) in pairs { append(name: name, value: value) }
    }

    mutating func append(name: String, value: String) {
        fields[name.lowercased(), default: []].append(value)
    }

    /// The first value of `name`.
    subscript(name: String) -> String? { fields[name.lowercased()]?.first }

    /// Every value of `name`, in arrival order.
    func values(_ name: String) -> [String] { fields[name.lowercased()] ?? [] }
}

/// Why a transfer produced no HTTP response. Messages name the failure, never the request:
/// URLs may carry device codes and headers carry tokens.
enum CurlFailure: Error, Sendable, Equatable {
    case timedOut
    case cancelled
    case bodyTooLarge
    case shutDown
    case transport(String)
}
