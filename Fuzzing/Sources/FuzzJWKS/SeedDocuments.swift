import BrokerCrypto
import FuzzSupport

/// The seed corpus: the broker's own JWKS shape, and documents that must lose an entry or be
/// refused whole.
enum SeedDocuments {
    static func entry(_ key: PrivateKey, kid: String? = nil, _ change: (inout JWK) -> Void = { _ in }) -> String {
        var jwk = key.publicKey.jwk(kid: kid ?? key.algorithm.rawValue)
        change(&jwk)
        var members: [String] = []
        func add(_ name: String, _ value: String?) { if let value { members.append(#""\#(name)":"\#(value)""#) } }
        add("kty", jwk.kty); add("crv", jwk.crv); add("x", jwk.x); add("y", jwk.y); add("n", jwk.n); add("e", jwk.e)
        add("kid", jwk.kid); add("alg", jwk.alg); add("use", jwk.use)
        return "{" + members.joined(separator: ",") + "}"
    }

    static func document(_ entries: [String]) -> String { #"{"keys":[\#(entries.joined(separator: ","))]}"# }

    static func all() -> [(name: String, contents: String)] {
        let es = FuzzKeys.es256, rs = FuzzKeys.rs256, ed = FuzzKeys.edDSA, ed25519 = FuzzKeys.ed25519
        let good = [entry(rs), entry(es), entry(ed), entry(ed25519)]
        // A 1024-bit modulus: the first 128 bytes of the real one.
        let shortModulus = Base64URL.encode(Array((Base64URL.decode(rs.publicKey.jwk(kid: nil).n ?? "") ?? []).prefix(128)))
        let offCurveY = Base64URL.encode([UInt8](repeating: 1, count: 32))
        return [
            ("broker-jwks", document(good)),
            ("one-key", document([entry(es)])),
            ("duplicate-kid", document([entry(es, kid: "k1"), entry(ed, kid: "k1"), entry(rs)])),
            ("duplicate-member", #"{"keys":[\#(entry(es))],"keys":[]}"#),
            ("alg-mismatch", document([entry(es) { $0.alg = "RS256" }, entry(rs) { $0.alg = "ES256" }])),
            ("alg-none", document([entry(es) { $0.alg = "none" }])),
            ("alg-missing", document([entry(es) { $0.alg = nil }])),
            ("hs256-oct", #"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h","alg":"HS256"}]}"#),
            ("use-enc", document([entry(es) { $0.use = "enc" }])),
            ("no-kid", document([entry(es) { $0.kid = nil }])),
            ("empty-kid", document([entry(es, kid: "")])),
            ("long-kid", document([entry(es, kid: String(repeating: "k", count: 300))])),
            ("traversal-kid", document([entry(es, kid: "../../etc/passwd")])),
            ("rsa-1024", document([entry(rs) { $0.n = shortModulus }])),
            ("rsa-exponent-1", document([entry(rs) { $0.e = "AQ" }])),
            ("rsa-exponent-even", document([entry(rs) { $0.e = "AQAA" }])),
            ("rsa-leading-zero", document([entry(rs) { $0.n = "AA" + ($0.n ?? "") }])),
            ("ec-off-curve", document([entry(es) { $0.y = offCurveY }])),
            ("ec-wrong-curve", document([entry(es) { $0.crv = "P-384" }])),
            ("ec-padded-x", document([entry(es) { $0.x = ($0.x ?? "") + "=" }])),
            ("okp-x448", document([entry(ed) { $0.crv = "Ed448" }])),
            ("okp-ed448-alg", document([entry(ed25519) { $0.alg = "Ed448" }])),
            ("ec-as-ed25519", document([entry(es) { $0.alg = "Ed25519" }])),
            ("okp-no-alg", document([entry(ed25519) { $0.alg = nil }])),
            ("x-number", #"{"keys":[{"kty":"EC","crv":"P-256","x":1,"y":2,"kid":"k","alg":"ES256"}]}"#),
            ("keys-object", #"{"keys":{"kty":"EC"}}"#),
            ("keys-missing", #"{"key":[]}"#),
            ("keys-empty", #"{"keys":[]}"#),
            ("keys-scalars", #"{"keys":[1,"a",null,true,[]]}"#),
            ("deep", #"{"keys":["# + String(repeating: "[", count: 30) + String(repeating: "]", count: 30) + "]}"),
            ("huge-numbers", #"{"keys":[\#(entry(es))],"n":1e999999,"m":-99999999999999999999999999999}"#),
            ("not-json", "<html>502 Bad Gateway</html>"),
        ]
    }
}
