import BrokerCrypto
import BrokerSync
import BrokerValidator
import Foundation

/// Keys generated once per test run: RSA generation costs tens of milliseconds.
enum TestKeys {
    static let es256 = try! PrivateKey.generate(.es256)
    static let rs256 = try! PrivateKey.generate(.rs256)
    static let edDSA = try! PrivateKey.generate(.edDSA)
    static let ed25519 = try! PrivateKey.generate(.ed25519)
    static let attacker = try! PrivateKey.generate(.es256)

    static func key(_ algorithm: JWSAlgorithm) -> PrivateKey {
        switch algorithm {
        case .es256: es256
        case .rs256: rs256
        case .edDSA: edDSA
        case .ed25519: ed25519
        }
    }

    static func kid(_ key: PrivateKey) -> String { key.publicKey.thumbprint }
}

/// Builds tokens field by field, so that each hostile case changes exactly one thing.
struct TokenFactory {
    static let issuer = "https://login.example.org"
    var now: Int64

    func claims(_ change: (inout [String: Any]) -> Void = { _ in }) -> [String: Any] {
        var claims: [String: Any] = [
            "iss": Self.issuer, "sub": "alice", "aud": ["cluster1"], "org": "org1", "org_roles": ["member", "owner"],
            "iat": now, "nbf": now, "exp": now + 3600, "jti": "abc", "auth_time": now, "amr": ["pwd"],
            "idp": "local", "token_type": "access", "org_name": "org1", "user_id": 1, "user_name": "alice",
        ]
        change(&claims)
        return claims
    }

    func header(_ key: PrivateKey = TestKeys.es256, _ change: (inout [String: Any]) -> Void = { _ in }) -> [String: Any] {
        var header: [String: Any] = ["alg": key.algorithm.rawValue, "typ": "at+jwt", "kid": TestKeys.kid(key)]
        change(&header)
        return header
    }

    func token(header: [String: Any], claims: [String: Any], key: PrivateKey = TestKeys.es256) throws -> String {
        let h = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])))
        let p = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])))
        let signature = try key.sign(Array("\(h).\(p)".utf8))
        return "\(h).\(p).\(Base64URL.encode(signature))"
    }

    /// A valid token for `cluster1`, signed by `key`, with `change` applied to the claims.
    func good(_ key: PrivateKey = TestKeys.es256, _ change: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        try token(header: header(key), claims: claims(change), key: key)
    }
}

/// JWKS documents as the broker publishes them, and broken ones.
enum JWKSDocuments {
    static func jwk(_ key: PrivateKey, kid: String? = nil) -> [String: Any] {
        let data = try! JSONEncoder().encode(key.publicKey.jwk(kid: kid ?? TestKeys.kid(key)))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    static func document(_ entries: [Any]) -> [UInt8] {
        Array(try! JSONSerialization.data(withJSONObject: ["keys": entries], options: [.sortedKeys]))
    }

    static func document(_ keys: PrivateKey...) -> [UInt8] {
        document(keys.map { jwk($0) })
    }
}

/// A `JWKSSource` whose answers the test scripts, counting every fetch and the ETag it carried.
final class FakeJWKSSource: JWKSSource {
    struct Failure: Error, CustomStringConvertible { var description: String { "broker unreachable" } }

    private struct State {
        var answer: @Sendable (String?) throws -> JWKSFetchResult
        var etagsSent: [String?] = []
        var delay: Duration = .zero
    }

    private let state: Locked<State>

    init(_ answer: @escaping @Sendable (String?) throws -> JWKSFetchResult) {
        state = Locked(State(answer: answer))
    }

    /// Serves `document` with `etag`; a request carrying that ETag gets 304.
    convenience init(document: [UInt8], etag: String? = "\"v1\"", maxAge: Int? = 300) {
        self.init(Self.serving(document, etag: etag, maxAge: maxAge))
    }

    static func serving(_ document: [UInt8], etag: String? = "\"v1\"", maxAge: Int? = 300)
        -> @Sendable (String?) throws -> JWKSFetchResult
    {
        { sent in
            if let etag, sent == etag { return .notModified(maxAge: maxAge) }
            return .document(document, etag: etag, maxAge: maxAge)
        }
    }

    func answer(_ answer: @escaping @Sendable (String?) throws -> JWKSFetchResult) {
        state.withLock { $0.answer = answer }
    }

    func fail() { answer { _ in throw Failure() } }

    /// Makes every fetch take this long, so that concurrent lookups overlap it.
    func delay(_ duration: Duration) { state.withLock { $0.delay = duration } }

    var fetchCount: Int { state.withLock { $0.etagsSent.count } }
    var etagsSent: [String?] { state.withLock { $0.etagsSent } }

    func fetch(ifNoneMatch etag: String?) async throws -> JWKSFetchResult {
        let (answer, delay) = state.withLock { state in
            state.etagsSent.append(etag)
            return (state.answer, state.delay)
        }
        if delay > .zero { try await Task.sleep(for: delay) }
        return try answer(etag)
    }
}

/// Collects a cache's events.
final class EventLog: Sendable {
    private let events = Locked<[JWKSCacheEvent]>([])
    func record(_ event: JWKSCacheEvent) { events.withLock { $0.append(event) } }
    var all: [JWKSCacheEvent] { events.withLock { $0 } }
}
