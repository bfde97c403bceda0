/// Produces compact JWS tokens (RFC 7515 section 7.1) with one private key.
///
/// The protected header `{"alg":…,"typ":…,"kid":…}` is encoded once at init. Each call then
/// writes base64url(payload), signs `header.payload` in place and appends base64url(signature),
/// all in the token string's own storage: one allocation per token.
///
/// ```swift
/// let signer = JWSSigner(key: activeKey, kid: activeKey.publicKey.thumbprint)
/// var claims = JSONWriter()
/// claims.beginObject(); claims.field("sub", "alice"); claims.endObject()
/// let token = try signer.sign(payload: claims.bytes)
/// ```
public struct JWSSigner: Sendable {
    /// The signing key.
    public let key: PrivateKey
    /// The key identifier written into every header.
    public let kid: String

    /// base64url(header) followed by the "." that precedes the payload.
    private let headerPrefix: [UInt8]

    /// - Parameters:
    ///   - kid: the key identifier verifiers look up in the JWKS.
    ///   - type: the `typ` header; "at+jwt" marks an OAuth access token (RFC 9068).
    public init(key: PrivateKey, kid: String, type: String = "at+jwt") {
        self.key = key
        self.kid = kid
        var header = JSONWriter(capacity: 128)
        header.beginObject()
        header.field("alg", key.algorithm.rawValue)
        header.field("typ", type)
        header.field("kid", kid)
        header.endObject()
        var prefix: [UInt8] = []
        prefix.reserveCapacity(Base64URL.encodedLength(header.bytes.count) + 1)
        header.bytes.withUnsafeBytes { Base64URL.encode(into: &prefix, $0) }
        prefix.append(UInt8(ascii: "."))
        self.headerPrefix = prefix
    }

    /// Signs `payload` (usually JSON claims) and returns the compact token.
    public func sign(payload: UnsafeRawBufferPointer) throws -> String {
        let payloadLength = Base64URL.encodedLength(payload.count)
        let signingInputLength = headerPrefix.count + payloadLength
        let signatureSize = key.signatureSize
        let total = signingInputLength + 1 + Base64URL.encodedLength(signatureSize)
        let key = self.key
        return try String(unsafeUninitializedCapacity: total) { buffer in
            let base = buffer.baseAddress!
            headerPrefix.withUnsafeBufferPointer { prefix in
                base.update(from: prefix.baseAddress!, count: prefix.count)
            }
            Base64URL.encode(payload, to: base + headerPrefix.count)
            let signingInput = UnsafeRawBufferPointer(start: base, count: signingInputLength)
            base[signingInputLength] = UInt8(ascii: ".")
            // Signatures are at most 2 KiB (RSA 16384), so the stack holds them.
            try withUnsafeTemporaryAllocation(byteCount: signatureSize, alignment: 1) { signature in
                let length = try key.sign(signingInput, into: signature)
                Base64URL.encode(UnsafeRawBufferPointer(rebasing: signature[0..<length]), to: base + signingInputLength + 1)
            }
            return total
        }
    }

    /// Signs `payload` and returns the compact token.
    public func sign(payload: [UInt8]) throws -> String {
        try payload.withUnsafeBytes { try sign(payload: $0) }
    }
}
