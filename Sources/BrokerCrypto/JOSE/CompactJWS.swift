/// A parsed compact JWS (RFC 7515 section 7.1): three strict base64url parts, the first a JSON
/// object header naming `alg`.
///
/// Parsing checks structure only; `verify(with:)` checks the signature. Claims are left to the
/// caller (`JSONParser.parse(jws.payload)`), since what they must contain is policy.
///
/// ```swift
/// let jws = try CompactJWS.parse(bearerToken)
/// guard let key = keys[jws.keyID ?? ""], jws.verify(with: key) else { throw Unauthorized() }
/// let claims = try JSONParser.parse(jws.payload)
/// ```
public struct CompactJWS: Sendable {
    /// The protected header's members.
    public let header: [String: JSONValue]
    /// The decoded payload.
    public let payload: [UInt8]
    /// The decoded signature.
    public let signature: [UInt8]
    /// The bytes the signature covers: `base64url(header) "." base64url(payload)`.
    public let signingInput: ArraySlice<UInt8>

    /// The header's `alg` (always present after a successful parse).
    public var algorithmName: String { header["alg"]?.string ?? "" }

    /// The header's `alg` as a supported algorithm; nil for any other value (including "none").
    public var algorithm: JWSAlgorithm? { JWSAlgorithm(rawValue: algorithmName) }

    /// The header's `kid`, if it is a string.
    public var keyID: String? { header["kid"]?.string }

    /// The header's `typ`, if it is a string.
    public var type: String? { header["typ"]?.string }

    /// Parses a compact JWS.
    ///
    /// - Parameter maxLength: tokens longer than this many bytes are refused before any
    ///   decoding, which bounds the work an unauthenticated request can cause.
    /// - Throws: `JWSError`.
    public static func parse(_ token: some StringProtocol, maxLength: Int = 16384) throws -> CompactJWS {
        guard token.utf8.count <= maxLength else { throw JWSError.tooLong(limit: maxLength) }
        return try parse(bytes: Array(token.utf8))
    }

    private static func parse(bytes: [UInt8]) throws(JWSError) -> CompactJWS {
        guard let firstDot = bytes.firstIndex(of: UInt8(ascii: ".")) else {
            throw JWSError.malformed("expected 3 parts separated by '.'")
        }
        guard let secondDot = bytes[(firstDot + 1)...].firstIndex(of: UInt8(ascii: ".")) else {
            throw JWSError.malformed("expected 3 parts separated by '.'")
        }
        guard !bytes[(secondDot + 1)...].contains(UInt8(ascii: ".")) else {
            throw JWSError.malformed("more than 3 parts (JWE tokens are not accepted)")
        }
        let headerPart = bytes[..<firstDot]
        let payloadPart = bytes[(firstDot + 1)..<secondDot]
        let signaturePart = bytes[(secondDot + 1)...]
        guard !headerPart.isEmpty else { throw JWSError.malformed("empty header") }
        // An empty signature is the "alg":"none" form: never acceptable here.
        guard !signaturePart.isEmpty else { throw JWSError.malformed("empty signature") }

        guard let headerBytes = Base64URL.decode(headerPart) else { throw JWSError.invalidEncoding(part: "header") }
        guard let payload = Base64URL.decode(payloadPart) else { throw JWSError.invalidEncoding(part: "payload") }
        guard let signature = Base64URL.decode(signaturePart) else { throw JWSError.invalidEncoding(part: "signature") }

        let headerValue: JSONValue
        do {
            headerValue = try headerBytes.withUnsafeBufferPointer { buffer throws(JSONParseError) in
                try JSONParser.parse(buffer: buffer, maxDepth: 8)
            }
        } catch {
            throw JWSError.invalidHeader(error.description)
        }
        guard case .object(let header) = headerValue else { throw JWSError.invalidHeader("not a JSON object") }
        guard let alg = header["alg"]?.string, !alg.isEmpty else {
            throw JWSError.invalidHeader("missing \"alg\"")
        }
        // RFC 7515 section 4.1.11: extensions listed in "crit" must be understood; we
        // understand none, so such a token must be rejected.
        guard header["crit"] == nil else { throw JWSError.invalidHeader("unsupported \"crit\" extensions") }
        return CompactJWS(header: header, payload: payload, signature: signature, signingInput: bytes[..<secondDot])
    }

    /// Whether the signature is valid under `key` and the header's `alg` is the key's algorithm.
    ///
    /// The `alg` check comes first so that a token cannot choose how it is verified.
    public func verify(with key: PublicKey) -> Bool {
        guard algorithmName == key.algorithm.rawValue else { return false }
        return signingInput.withUnsafeBytes { key.verify(signature: signature, message: $0) }
    }

    /// As `verify(with:)`, but throws `JWSError.algorithmMismatch` or `.invalidSignature`.
    public func checkSignature(with key: PublicKey) throws {
        guard algorithmName == key.algorithm.rawValue else {
            throw JWSError.algorithmMismatch(expected: key.algorithm, found: algorithmName)
        }
        guard verify(with: key) else { throw JWSError.invalidSignature }
    }
}
