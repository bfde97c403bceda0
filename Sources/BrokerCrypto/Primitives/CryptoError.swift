import COpenSSL

/// The error thrown by key handling and signature operations.
///
/// The message says what failed and, when OpenSSL gave one, OpenSSL's reason string. It never
/// contains key material or token contents, so it may be logged as is.
///
/// ```swift
/// do {
///     _ = try PrivateKey(pem: text, algorithm: .es256)
/// } catch let error as CryptoError {
///     logger.error("cannot load signing key: \(error)")
/// }
/// ```
public struct CryptoError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A human-readable reason, safe to log.
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }

    /// Builds an error from OpenSSL's thread-local error queue and empties the queue.
    ///
    /// The queue must be drained on every failure path: it is per thread, and a stale entry
    /// would be reported by whatever unrelated call fails next on that thread.
    static func openSSL(_ context: String) -> CryptoError {
        let code = ERR_peek_last_error()
        ERR_clear_error()
        guard code != 0 else { return CryptoError(context) }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        let reason = buffer.withUnsafeBufferPointer { pointer in
            String(decoding: UnsafeRawBufferPointer(pointer).prefix { $0 != 0 }, as: UTF8.self)
        }
        return CryptoError("\(context) (\(reason))")
    }
}
