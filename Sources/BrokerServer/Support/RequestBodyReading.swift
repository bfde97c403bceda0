import BrokerCore
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1

/// Reading a request body, once for every route that takes one (the JSON routes through
/// `JSONRequestBody`, the OAuth routes through `FormBody`): the failures of the HTTP message
/// itself become client errors with stable codes, never the 500 of an unexpected error.
///
/// - A broken message (a chunk size that is not hex, a body that ends before its
///   `Content-Length`, a `Transfer-Encoding` whose final coding is not `chunked`): 400
///   `invalid_framing` (RFC 9112 section 6.3).
/// - A well-framed chunked body under a transfer coding the broker does not implement
///   (`gzip, chunked`): 501 `unsupported_transfer_coding` (RFC 9112 section 6.1).
/// - More than `limit` bytes: 413 `payload_too_large`.
enum RequestBodyReading {
    static func collect(_ request: inout Request, upTo limit: Int) async throws -> ByteBuffer {
        if let unsupported = unimplementedTransferCoding(request.headers) {
            throw BrokerError(.unsupportedTransferCoding, "the transfer coding \(unsupported) is not implemented; send the body as is or chunked")
        }
        do {
            return try await request.collectBody(upTo: limit)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw BrokerError(.payloadTooLarge, "the request body exceeds \(limit) bytes")
        } catch is ChannelError, is IOError {
            // The client reset or closed the connection mid-body: its doing, and nobody to answer.
            throw BrokerError(.invalidFraming, "the connection ended before the request body was complete")
        } catch {
            if let framing = framingError(error, headers: request.headers) { throw framing }
            throw error
        }
    }

    /// The client's error when `error` is the parser's refusal of the HTTP message; nil for
    /// anything else.
    static func framingError(_ error: any Error, headers: HTTPFields) -> BrokerError? {
        switch error {
        case let parserError as HTTPParserError:
            if let codings = transferCodings(headers), codings.last != "chunked" {
                return BrokerError(.invalidFraming, "the final transfer coding must be chunked")
            }
            switch parserError {
            case .invalidChunkSize: return BrokerError(.invalidFraming, "invalid chunk size")
            case .invalidEOFState, .closedConnection:
                return BrokerError(.invalidFraming, "the connection ended before the request body was complete")
            case .invalidContentLength, .unexpectedContentLength: return BrokerError(.invalidFraming, "invalid Content-Length")
            default: return BrokerError(.invalidFraming, "malformed HTTP message")
            }
        default:
            return nil
        }
    }

    /// The codings of `Transfer-Encoding`, lower-cased, in order; nil without the header.
    static func transferCodings(_ headers: HTTPFields) -> [String]? {
        let values = headers[values: .transferEncoding]
        guard !values.isEmpty else { return nil }
        return values.flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            .filter { !$0.isEmpty }
    }

    /// A coding other than `chunked` in a list whose final coding is `chunked` (which the parser
    /// accepts and whose decoded body would still be compressed); nil when there is none.
    /// A list not ending in `chunked` is left to the parser, whose error `framingError` maps.
    static func unimplementedTransferCoding(_ headers: HTTPFields) -> String? {
        guard let codings = transferCodings(headers), codings.last == "chunked" else { return nil }
        guard let other = codings.dropLast().first(where: { $0 != "chunked" }) else { return nil }
        return String(other.prefix(40).unicodeScalars.filter { $0.isASCII && $0.value >= 0x21 && $0.value < 0x7F }.map(Character.init))
    }
}
