import BrokerValidator
import Logging
import NIOHTTP1

/// The forward-auth decision for nginx `auth_request`, Traefik ForwardAuth and Envoy's HTTP
/// ext_authz: any method, any path; the bearer token in `Authorization` decides.
///
/// - 200, empty body, `x-sliderule-account` and `x-sliderule-org-roles`: a valid token for
///   this cluster.
/// - 401 with `WWW-Authenticate: Bearer`: no token, or an invalid one.
/// - 403: a valid token for another cluster; or a request carrying an `x-sliderule-*` header
///   that is neither one of the two above (which the proxy replaces with this answer's) nor
///   one SlideRule's client sends (`GatewayHeaders`): the proxies this answers for cannot
///   remove headers by pattern, so such a request is refused rather than passed on with it.
///
/// It reads a request's headers and gives the answer (`ForwardAuthAnswer`); it does no I/O.
/// `decide(_:)` never waits, so that `ForwardAuthHandler` can call it on the event loop; only
/// a token that is not a valid cache hit is left to `answer(validating:)`, which checks its
/// signature and so runs in a task.
///
/// The token is never logged; a refusal's reason is, and it never quotes the token.
///
/// ```swift
/// let responder = ForwardAuthResponder(validator: validator, cluster: "cluster1", logger: logger)
/// switch responder.decide(head.headers) {
/// case .answer(let answer): write(answer)
/// case .validate(let token): write(await responder.answer(validating: token))
/// }
/// ```
struct ForwardAuthResponder: Sendable {
    let validator: GatewayValidator
    /// This gateway's cluster name: the audience every accepted token must name.
    let cluster: String
    let logger: Logger

    enum Decision {
        /// The answer, decided at once.
        case answer(ForwardAuthAnswer)
        /// The answer needs this token checked (`answer(validating:)`).
        case validate(String)
    }

    /// The answer to a request with these headers, if it is known without waiting: a reserved
    /// header, no token, or a token the validator answers from its cache.
    func decide(_ headers: HTTPHeaders) -> Decision {
        let foreign = Self.foreignReservedNames(in: headers)
        if !foreign.isEmpty {
            logger.info(
                "refused: the request carries x-sliderule-* headers only a gateway may set",
                metadata: ["headers": "\(foreign.prefix(8).map { LogText.escaped($0, limit: 64) }.joined(separator: ","))"])
            return .answer(.reservedHeaderRefusal)
        }
        guard let token = BearerToken.from(headers) else { return .answer(answer(for: .failure(.missingToken))) }
        if let result = validator.validateIfCached(token, cluster: cluster) { return .answer(answer(for: result)) }
        return .validate(token)
    }

    /// The answer for a token `decide(_:)` could not answer from the cache: its signature is
    /// checked, and the key set fetched if it must be.
    func answer(validating token: String) async -> ForwardAuthAnswer {
        answer(for: await validator.validate(token, cluster: cluster))
    }

    private func answer(for result: Result<GatewayIdentity, GatewayRefusal>) -> ForwardAuthAnswer {
        switch result {
        case .success(let identity):
            guard let values = IdentityHeaders.values(for: identity) else {
                logger.info(
                    "refused: the token's sub cannot be sent in a header",
                    metadata: ["jti": "\(LogText.escaped(identity.claims.tokenID, limit: 64))"])
                return .refusal(.invalidToken(.missingClaim("sub")))
            }
            logger.debug(
                "allowed",
                metadata: [
                    "account": "\(LogText.escaped(identity.account, limit: 128))",
                    "jti": "\(LogText.escaped(identity.claims.tokenID, limit: 64))",
                ])
            return .allowed(account: values.account, roles: values.roles)
        case .failure(let refusal):
            // The reason may quote the token's header: `TokenRejection` escapes it (LogText).
            logger.info("refused", metadata: ["status": "\(refusal.httpStatus)", "reason": "\(refusal)"])
            return .refusal(refusal)
        }
    }

    /// The request's `x-sliderule-*` names that only a gateway may set, lower case, each once:
    /// `GatewayHeaders.reservedNames(in:)` but the two identity headers, which the proxy
    /// replaces with this answer's.
    static func foreignReservedNames(in headers: HTTPHeaders) -> [String] {
        // Nearly every request has none: look for the prefix first, without allocating.
        guard headers.contains(where: { hasReservedPrefix($0.name) }) else { return [] }
        return GatewayHeaders.reservedNames(in: headers.map { $0.name }).filter { !GatewayHeaders.identity.contains($0) }
    }

    /// Whether `name` starts with `x-sliderule-` in any case.
    private static func hasReservedPrefix(_ name: String) -> Bool {
        var remaining = name.utf8.makeIterator()
        for expected in GatewayHeaders.prefix.utf8 {
            guard let byte = remaining.next() else { return false }
            let lowered = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
            guard lowered == expected else { return false }
        }
        return true
    }
}
