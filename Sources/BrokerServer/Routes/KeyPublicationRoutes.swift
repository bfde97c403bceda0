import BrokerCore
import BrokerCrypto
import Hummingbird

/// What gateways and OIDC libraries read: the JWKS, the active key as PEM, the discovery
/// document, and a health check.
struct KeyPublicationRoutes<Context: RequestContext> {
    let services: BrokerServices
    /// Short enough that a gateway always holds the next key before it signs (issue 4 ties it
    /// to the pre-publication window).
    static var jwksMaxAge: Int { 300 }

    func register(on router: Router<Context>) {
        router.get(".well-known/jwks.json") { _, _ in jwks() }
        router.get("auth/pem") { _, _ in try pem() }
        router.get(".well-known/openid-configuration") { _, _ in discovery() }
        router.get("healthz") { _, _ in try await health() }
    }

    func jwks() -> Response {
        let snapshot = services.keyRing.snapshot
        return Response(
            status: .ok,
            headers: [
                .contentType: "application/jwk-set+json",
                .cacheControl: "public, max-age=\(Self.jwksMaxAge)",
                .eTag: "\"ring-\(snapshot.version)\"",
            ],
            body: .init(byteBuffer: ByteBuffer(bytes: snapshot.jwksJSON)))
    }

    func pem() throws -> Response {
        let algorithm = services.configuration.signingAlgorithm
        guard let active = services.keyRing.snapshot.activeSigner(for: algorithm) else {
            throw BrokerError(.unavailable, "no active signing key")
        }
        return Response(
            status: .ok,
            headers: [.contentType: "application/x-pem-file", .cacheControl: "public, max-age=\(Self.jwksMaxAge)"],
            body: .init(byteBuffer: ByteBuffer(string: try active.publicKey.spkiPEM())))
    }

    func discovery() -> Response {
        let issuer = services.configuration.issuer
        return JSONResponses.make(.ok, noStore: false) { json in
            json.beginObject()
            json.key("issuer"); json.string(issuer)
            json.key("jwks_uri"); json.string(issuer + "/.well-known/jwks.json")
            json.key("token_endpoint"); json.string(issuer + "/oauth/token")
            json.key("grant_types_supported"); json.beginArray()
            json.string("refresh_token"); json.string("urn:ietf:params:oauth:grant-type:token-exchange")
            json.endArray()
            json.key("response_types_supported"); json.beginArray(); json.string("token"); json.endArray()
            json.key("subject_types_supported"); json.beginArray(); json.string("public"); json.endArray()
            json.key("token_endpoint_auth_methods_supported"); json.beginArray(); json.string("none"); json.endArray()
            json.key("id_token_signing_alg_values_supported"); json.beginArray()
            for algorithm in JWSAlgorithm.allCases { json.string(algorithm.rawValue) }
            json.endArray()
            json.key("claims_supported"); json.beginArray()
            for claim in ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "amr", "idp", "org", "org_roles", "org_name", "user_id", "user_name", "token_type"] {
                json.string(claim)
            }
            json.endArray()
            json.endObject()
        }
    }

    func health() async throws -> Response {
        do {
            try await services.store.transaction { _ in }
        } catch {
            throw BrokerError(.unavailable, "the store is not reachable")
        }
        return JSONResponses.make(.ok) { json in
            json.beginObject()
            json.key("status"); json.string("ok")
            json.endObject()
        }
    }
}
