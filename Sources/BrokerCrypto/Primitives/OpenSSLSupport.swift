import BrokerSync
import COpenSSL

/// An OpenSSL object pointer that may cross threads.
///
/// `@unchecked` because OpenSSL's fetched algorithm objects (`EVP_MD`, `EVP_MAC`) are immutable,
/// reference-counted and documented as safe to share between threads once fetched.
struct SharedOpenSSLObject: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// Algorithm implementations fetched once per process.
///
/// Fetching by name takes a global lock and a hash lookup inside OpenSSL; doing it per token
/// would cost more than the hash itself. Static `let`s are initialised once, thread-safely.
enum OpenSSLAlgorithms {
    static let sha256: SharedOpenSSLObject = {
        guard let md = EVP_MD_fetch(nil, "SHA256", nil) else {
            fatalError("OpenSSL has no SHA-256 implementation (\(CryptoError.openSSL("EVP_MD_fetch")))")
        }
        return SharedOpenSSLObject(pointer: md)
    }()

    static let hmac: SharedOpenSSLObject = {
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else {
            fatalError("OpenSSL has no HMAC implementation (\(CryptoError.openSSL("EVP_MAC_fetch")))")
        }
        return SharedOpenSSLObject(pointer: mac)
    }()

    static let aes256GCM: SharedOpenSSLObject = {
        guard let cipher = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil) else {
            fatalError("OpenSSL has no AES-256-GCM implementation (\(CryptoError.openSSL("EVP_CIPHER_fetch")))")
        }
        return SharedOpenSSLObject(pointer: cipher)
    }()
}

/// A small free list of prepared OpenSSL operation contexts for one key.
///
/// Setting up an `EVP_PKEY_CTX` or `EVP_MD_CTX` for a signature costs several microseconds in
/// OpenSSL 3 (provider lookup, allocation, parameter plumbing), as much as a third of an ES256
/// signature. A context can be reused for any number of operations but by one thread at a time,
/// so each caller borrows one from this list and gives it back; a miss creates a new one, so
/// the list grows to the number of threads that ever signed concurrently (capped).
///
/// `@unchecked Sendable`: the list is only touched under the mutex, and the factory only reads
/// the key, which is immutable.
final class ContextPool: @unchecked Sendable {
    /// A context parked in the free list. `@unchecked Sendable`: while parked, the list is its
    /// only owner, and ownership moves whole to the one thread that pops it.
    private struct Parked: @unchecked Sendable {
        let context: OpaquePointer
    }

    private let free: Locked<[Parked]>
    private let factory: () -> OpaquePointer?
    private let destroy: (OpaquePointer) -> Void
    private let limit: Int

    init(limit: Int = 64, factory: @escaping () -> OpaquePointer?, destroy: @escaping (OpaquePointer) -> Void) {
        self.free = Locked([])
        self.factory = factory
        self.destroy = destroy
        self.limit = limit
    }

    deinit {
        let contexts = free.withLock { list in
            let all = list
            list.removeAll()
            return all
        }
        for parked in contexts { destroy(parked.context) }
    }

    /// Runs `body` with a context that no other thread uses meanwhile.
    ///
    /// Returns nil when no context could be created (OpenSSL out of memory). A context whose
    /// operation failed for a reason other than a bad signature is dropped, not reused, since
    /// OpenSSL does not promise it is still in a usable state.
    func withContext<Result>(_ body: (OpaquePointer) -> (result: Result, reusable: Bool)) -> Result? {
        let context: OpaquePointer
        if let cached = free.withLock({ $0.popLast() }) {
            context = cached.context
        } else if let fresh = factory() {
            context = fresh
        } else {
            return nil
        }
        let outcome = body(context)
        if outcome.reusable {
            let kept = free.withLock { list -> Bool in
                guard list.count < limit else { return false }
                list.append(Parked(context: context))
                return true
            }
            if !kept { destroy(context) }
        } else {
            destroy(context)
        }
        return outcome.result
    }
}

/// Calls `body` with a non-null base address even for an empty buffer: some OpenSSL entry
/// points treat a NULL input pointer as an error whatever the length.
@inline(__always)
func withNonNullBase<Result>(
    _ buffer: UnsafeRawBufferPointer,
    _ body: (UnsafePointer<UInt8>, Int) throws -> Result
) rethrows -> Result {
    if let base = buffer.baseAddress, buffer.count > 0 {
        return try body(base.assumingMemoryBound(to: UInt8.self), buffer.count)
    }
    var placeholder: UInt8 = 0
    return try withUnsafePointer(to: &placeholder) { try body($0, 0) }
}

/// A C string pointer that stays valid for the life of the process, for OSSL_PARAM keys and
/// values (OSSL_PARAM stores pointers rather than copying).
@inline(__always)
func staticCString(_ string: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(string.utf8Start).assumingMemoryBound(to: CChar.self)
}

/// As `staticCString`, for the OpenSSL entry points that take `char *` but only read it.
@inline(__always)
func mutableStaticCString(_ string: StaticString) -> UnsafeMutablePointer<CChar> {
    UnsafeMutableRawPointer(mutating: string.utf8Start).assumingMemoryBound(to: CChar.self)
}
