import HTTPTypes
import BrokerCore
import BrokerCrypto
import Hummingbird

/// Builds JSON responses from our fast writer, with the headers every API answer carries.
enum JSONResponses {
    static func make(_ status: HTTPResponse.Status, noStore: Bool = true, _ build: (inout JSONWriter) -> Void) -> Response {
        var writer = JSONWriter(capacity: 256)
        build(&writer)
        var headers: HTTPFields = [.contentType: "application/json"]
        if noStore {
            // RFC 6749 section 5.1: responses that carry tokens must not be cached.
            headers[.cacheControl] = "no-store"
            headers[HTTPField.Name("Pragma")!] = "no-cache"
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: writer.bytes)))
    }

    /// `{"<name>": [item, ...]}`: the list answers of the membership and admin routes.
    static func list<Item>(_ name: String, _ items: [Item], _ write: (inout JSONWriter, Item) -> Void) -> Response {
        make(.ok) { json in
            json.beginObject()
            json.key(name)
            json.beginArray()
            for item in items { write(&json, item) }
            json.endArray()
            json.endObject()
        }
    }

    /// `{"error": code, "detail": text}`: the error shape of the generation-1 and admin routes,
    /// with the challenge of a 401 or 403 (``HTTPChallenge``); with
    /// ``ErrorBodyShape/generation1Scaling``, also `error_msg` and `status`.
    static func error(_ error: BrokerError, for request: Request, shape: ErrorBodyShape = .standard) -> Response {
        var response = make(.init(code: error.code.httpStatus)) { json in
            json.beginObject()
            json.key("error"); json.string(error.code.rawValue)
            json.key("detail"); json.string(error.httpDetail)
            if shape == .generation1Scaling {
                json.key("error_msg"); json.string(error.httpDetail)
                json.key("status"); json.string(ErrorBodyShape.failedStatus)
            }
            json.endObject()
        }
        if let seconds = error.retryAfter {
            response.headers[.retryAfter] = String(max(1, seconds))
        }
        if let challenge = HTTPChallenge.header(for: error, request: request) {
            response.headers[.wwwAuthenticate] = challenge
        }
        return response
    }
}

/// Which members an error body has besides `error` and `detail`.
enum ErrorBodyShape: Sendable, Equatable {
    case standard
    /// The scaling calls of generation-1 clients (4.x): they read an error's text from
    /// `error_msg`, and `org_ip_adr`'s answer's `status` whatever the HTTP status; without
    /// either they die with a KeyError instead of printing the message.
    case generation1Scaling

    /// `status` of an error: anything but the `SUCCESS` the client looks for.
    static let failedStatus = "FAILED"
}
