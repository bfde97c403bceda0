import Foundation
import BrokerCore
import BrokerCrypto
import Hummingbird

/// What gateways and OAuth and OIDC libraries read: the JWKS, the active key as PEM, the
/// metadata documents (``AuthorizationServerMetadata``), and the health checks of load
/// balancers and orchestrators.
struct KeyPublicationRoutes<Context: RemoteAddressRequestContext> {
    let services: BrokerServices
    /// Never longer than the pre-publication window, so a gateway that honours it always holds
    /// the next key before that key signs.
    var jwksMaxAge: Int { services.keyPolicy.jwksMaxAge }

    func register(on router: Router<Context>) {
        router.get(".well-known/jwks.json") { request, _ in jwks(request) }
        router.get("auth/pem") { request, _ in try pem(request) }
        let metadata = AuthorizationServerMetadata(configuration: services.configuration, githubEnabled: services.github != nil)
        let (authorizationServer, openID) = (metadata.authorizationServerDocument(), metadata.openIDDocument())
        router.get(".well-known/openid-configuration") { _, _ in Self.document(openID) }
        router.get(".well-known/oauth-authorization-server") { _, _ in Self.document(authorizationServer) }
        if let suffix = metadata.pathSuffix {
            router.get(RouterPath(".well-known/oauth-authorization-server/" + suffix)) { _, _ in
                Self.document(authorizationServer)
            }
        }
        router.get("healthz") { _, _ in try await health() }
        router.get("livez") { _, _ in liveness() }
        router.get("readyz") { _, _ in try await readiness() }
    }

    /// The published keys. `ETag` names the ring version; `If-None-Match` gets a 304.
    func jwks(_ request: Request) -> Response {
        let snapshot = services.keyRing.snapshot
        let etag = "\"ring-\(snapshot.version)\""
        var headers: HTTPFields = [.cacheControl: "public, max-age=\(jwksMaxAge)", .eTag: etag]
        if let presented = request.headers[.ifNoneMatch],
            presented.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == etag || $0 == "*" })
        {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = "application/jwk-set+json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: snapshot.jwksJSON)))
    }

    /// The active key as PEM (what HAProxy loads at start), or with `?kid=` any published key.
    func pem(_ request: Request) throws -> Response {
        let snapshot = services.keyRing.snapshot
        let key: PublicKey
        if let kid = request.uri.queryParameters.get("kid") {
            guard let published = snapshot.verificationKey(kid: kid) else {
                throw BrokerError(.notFound, "no published key with this kid")
            }
            key = published
        } else {
            guard let active = snapshot.activeSigner(for: services.configuration.signingAlgorithm) else {
                throw BrokerError(.unavailable, "no active signing key")
            }
            key = active.publicKey
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: "application/x-pem-file", .cacheControl: "public, max-age=\(jwksMaxAge)",
                .eTag: "\"ring-\(snapshot.version)\"",
            ],
            body: .init(byteBuffer: ByteBuffer(string: try key.spkiPEM())))
    }

    /// A metadata document, built once: it changes only with the configuration.
    static func document(_ bytes: [UInt8]) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// Kept for compatibility (`/readyz` also checks the key ring). A read, never a write
    /// transaction, so that it answers while a CLI holds the store's write lock.
    func health() async throws -> Response {
        do {
            try await services.store.checkReachable()
        } catch {
            throw BrokerError(.unavailable, "the store is not reachable")
        }
        return Self.statusOK()
    }

    /// The process answers. Nothing else is consulted: an orchestrator restarts a process that
    /// fails this, and a restart cures no store outage.
    func liveness() -> Response {
        Self.statusOK()
    }

    /// Whether this replica can serve logins: the store answers a read and the ring holds an
    /// active signing key.
    func readiness() async throws -> Response {
        do {
            try await services.store.checkReachable()
        } catch {
            throw BrokerError(.unavailable, "the store is not reachable", retryAfter: Self.notReadyRetryAfter)
        }
        guard services.keyRing.snapshot.activeSigner(for: services.configuration.signingAlgorithm) != nil else {
            throw BrokerError(.unavailable, "no active signing key", retryAfter: Self.notReadyRetryAfter)
        }
        return Self.statusOK()
    }

    /// Seconds a balancer waits before asking a replica that is not ready again.
    static var notReadyRetryAfter: Int { 5 }

    private static func statusOK() -> Response {
        JSONResponses.make(.ok) { json in
            json.beginObject()
            json.key("status"); json.string("ok")
            json.endObject()
        }
    }
}
