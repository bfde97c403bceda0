import BrokerCrypto
import BrokerValidator
import FuzzSupport

// A JWKS answer as `broker gateway` and the validator library receive it. Invariants beyond
// "no crash":
// - every usable key has a non-empty `kid` of at most 256 bytes, published once;
// - a usable key declares the algorithm it is kept under, and its JWK rebuilds the same key;
// - a refused document is refused whole (no partial key set).

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutableRawPointer) -> CInt {
    FuzzSeeds.writeIfAsked(SeedDocuments.all)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJWKS(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = fuzzBytes(data, count)
    guard let set = try? JWKSKeySet(document: bytes, maximumSize: 256 * 1024) else { return 0 }
    fuzzCheck(!set.keys.isEmpty, "a key set without a usable key")
    let duplicated = Set(set.skipped.filter { $0.reason == "kid published more than once" }.compactMap(\.kid))
    for (kid, key) in set.keys {
        fuzzCheck(!kid.isEmpty && kid.utf8.count <= JWKSKeySet.maximumKeyIDLength, "an unusable kid was kept")
        fuzzCheck(!duplicated.contains(String(kid.prefix(64))), "a kid published twice was kept")
        fuzzCheck(set.key(for: kid) === key, "lookup by kid found another key")
        let jwk = key.jwk(kid: kid)
        fuzzCheck(jwk.alg == key.algorithm.rawValue, "a key's JWK names another algorithm")
        guard let rebuilt = try? PublicKey(jwk: jwk) else {
            fuzzCheck(false, "a usable key's own JWK is refused")
            continue
        }
        fuzzCheck(rebuilt.thumbprint == key.thumbprint, "a key's JWK rebuilds another key")
        // EdDSA and Ed25519 share key material: the name must survive the round trip too.
        fuzzCheck(rebuilt.algorithm == key.algorithm, "a key's JWK rebuilds it for another algorithm")
    }
    return 0
}
