import BrokerCrypto
import BrokerValidator
import Foundation
import FuzzSupport

// The compact JWS parser, the signature check and the access-token rules, as a gateway runs
// them on an `Authorization` header (docs/fuzzing.md). Invariants beyond "no crash":
// - a token is accepted only with a supported `alg` that is the key's own, and only in one
//   spelling (each part re-encodes to itself: no padding, no stray bits);
// - an accepted token names the expected issuer and audience;
// - a rejection never quotes the token.

private let issuer = "https://broker.fuzz.example"
private let audience = "cluster1"
private let checks = AccessTokenChecks(issuer: issuer, leeway: 30)
/// Inside the validity window of the seed tokens (iat 1_799_999_000, exp 1_800_003_600).
private let now = Date(timeIntervalSince1970: 1_800_000_000)

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutableRawPointer) -> CInt {
    FuzzSeeds.writeIfAsked(SeedTokens.all)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJWS(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = fuzzText(data, count)
    let token = BearerCredentials.token(fromAuthorization: text) ?? text

    if let jws = try? CompactJWS.parse(token) {
        _ = (jws.algorithm, jws.keyID, jws.type)
        for key in FuzzKeys.all where jws.verify(with: key.publicKey) {
            fuzzCheck(jws.algorithmName == key.algorithm.rawValue, "verified under a key of another algorithm")
            fuzzCheck(isSingleSpelling(token), "a signature verified over a second spelling of the token")
        }
        // The claim rules on any payload, signed or not.
        if let claims = try? checks.checkClaims(jws.payload, now: now) {
            fuzzCheck(claims.issuer == issuer && claims.tokenType == "access", "claims of another issuer or type")
        }
    }

    do {
        let claims = try checks.verify(token, audience: audience, now: now) { FuzzKeys.publicKey(kid: $0) }
        fuzzCheck(isSingleSpelling(token), "accepted a second spelling of a token")
        fuzzCheck(claims.audience.contains(audience), "accepted a token for another audience")
        fuzzCheck(claims.issuer == issuer, "accepted a token of another issuer")
    } catch {
        if token.utf8.count >= 32 {
            // Byte-wise: Foundation's `contains` stops at a NUL and would find a lone quote anywhere.
            fuzzCheck(
                Array(error.description.utf8).firstRange(of: Array(token.utf8)) == nil, "a rejection quotes the token")
        }
    }
    return 0
}

/// Whether each of the three parts is the canonical base64url of what it decodes to.
private func isSingleSpelling(_ token: String) -> Bool {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3 else { return false }
    return parts.allSatisfy { part in Base64URL.decode(part).map { Base64URL.encode($0) == part } ?? false }
}
