import BrokerCrypto
import Foundation
import FuzzSupport

/// The seed corpus: valid tokens of each algorithm, and RFC 8725's hostile shapes signed with
/// the right key, so that only the rule under test stands between them and acceptance.
enum SeedTokens {
    static func claims(_ extra: String = "", aud: String = #"["cluster1"]"#, exp: String = "1800003600") -> String {
        #"{"iss":"https://broker.fuzz.example","sub":"alice","aud":\#(aud),"org":"sliderule","org_roles":["member"],"#
            + #""iat":1799999000,"nbf":1799999000,"exp":\#(exp),"jti":"jti-1","auth_time":1799999000,"amr":["pwd"],"#
            + #""idp":"local","token_type":"access","org_name":"sliderule","user_id":7,"user_name":"alice"\#(extra)}"#
    }

    static func header(_ alg: String, kid: String? = nil, _ extra: String = "") -> String {
        #"{"alg":"\#(alg)","typ":"at+jwt""# + (kid.map { #","kid":"\#($0)""# } ?? "") + extra + "}"
    }

    /// `header.payload.signature`, signed with `key` whatever the header says.
    static func sign(_ header: String, _ payload: String, with key: PrivateKey) -> String {
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8))
        let signature = (try? key.sign(Array(input.utf8))) ?? []
        return input + "." + Base64URL.encode(signature)
    }

    static func all() -> [(name: String, contents: String)] {
        let es = FuzzKeys.es256, rs = FuzzKeys.rs256, ed = FuzzKeys.edDSA, ed25519 = FuzzKeys.ed25519
        let payload = claims()
        var seeds: [(name: String, contents: String)] = []
        for key in FuzzKeys.all {
            let name = key.algorithm.rawValue
            seeds.append(("valid-\(name)", sign(header(name, kid: name), payload, with: key)))
        }
        let valid = sign(header("ES256", kid: "ES256"), payload, with: es)
        let parts = valid.split(separator: ".").map(String.init)
        let ecJWK = #"{"kty":"EC","crv":"P-256","x":"\#(es.publicKey.jwk(kid: nil).x ?? "")","y":"\#(es.publicKey.jwk(kid: nil).y ?? "")"}"#
        let rsaPEM = Array(((try? rs.publicKey.spkiPEM()) ?? "").utf8)
        let hsInput = Base64URL.encode(Array(header("HS256", kid: "RS256").utf8)) + "." + Base64URL.encode(Array(payload.utf8))
        seeds += [
            ("bearer-header", "Bearer " + valid),
            ("bearer-lowercase-tabs", "bearer \t" + valid + " \t"),
            ("alg-none-empty-signature", Base64URL.encode(Array(header("none", kid: "ES256").utf8)) + "." + parts[1] + "."),
            ("alg-none-with-signature", sign(header("none", kid: "ES256"), payload, with: es)),
            ("alg-None-case", sign(header("None", kid: "ES256"), payload, with: es)),
            // HS256 keyed with the RSA public key's PEM: the classic confusion.
            ("hs256-with-rsa-public-key", hsInput + "." + Base64URL.encode(Digest.hmacSHA256(key: rsaPEM, message: Array(hsInput.utf8)))),
            ("rs256-header-es256-key", sign(header("RS256", kid: "ES256"), payload, with: rs)),
            ("es256-header-rs256-kid", sign(header("ES256", kid: "RS256"), payload, with: es)),
            ("eddsa-header-es256-kid", sign(header("EdDSA", kid: "ES256"), payload, with: ed)),
            // One key material, two names (RFC 9864): each header under the other name's kid.
            ("ed25519-header-eddsa-kid", sign(header("Ed25519", kid: "EdDSA"), payload, with: ed25519)),
            ("eddsa-header-ed25519-kid", sign(header("EdDSA", kid: "Ed25519"), payload, with: ed)),
            ("ed25519-header-es256-kid", sign(header("Ed25519", kid: "ES256"), payload, with: ed25519)),
            ("embedded-jwk", sign(header("ES256", kid: "ES256", #","jwk":\#(ecJWK)"#), payload, with: es)),
            ("embedded-jwk-no-kid", sign(header("ES256", #","jwk":\#(ecJWK)"#), payload, with: es)),
            ("jku", sign(header("ES256", kid: "ES256", #","jku":"https://evil.example/jwks.json""#), payload, with: es)),
            ("x5u", sign(header("ES256", kid: "ES256", #","x5u":"https://evil.example/cert.pem""#), payload, with: es)),
            ("x5c", sign(header("ES256", kid: "ES256", #","x5c":["MIIB"]"#), payload, with: es)),
            ("kid-traversal", sign(header("ES256", kid: "../../../../etc/passwd"), payload, with: es)),
            ("kid-dev-null", sign(header("ES256", kid: "/dev/null"), payload, with: es)),
            ("kid-nul", sign(header("ES256", kid: #"ES256\u0000"#), payload, with: es)),
            ("kid-sql", sign(header("ES256", kid: "' OR 1=1 --"), payload, with: es)),
            ("kid-number", sign(#"{"alg":"ES256","typ":"at+jwt","kid":1}"#, payload, with: es)),
            ("crit", sign(header("ES256", kid: "ES256", #","crit":["exp"],"exp":1"#), payload, with: es)),
            ("crit-empty", sign(header("ES256", kid: "ES256", #","crit":[]"#), payload, with: es)),
            ("b64-false", sign(header("ES256", kid: "ES256", #","b64":false,"crit":["b64"]"#), payload, with: es)),
            ("duplicate-alg", sign(#"{"alg":"ES256","typ":"at+jwt","kid":"ES256","alg":"none"}"#, payload, with: es)),
            ("duplicate-sub", sign(header("ES256", kid: "ES256"), claims(#","sub":"root""#), with: es)),
            ("duplicate-escaped-name", sign(#"{"alg":"ES256","typ":"at+jwt","kid":"ES256","\u0061lg":"none"}"#, payload, with: es)),
            ("typ-jwt", sign(#"{"alg":"ES256","typ":"JWT","kid":"ES256"}"#, payload, with: es)),
            ("typ-missing", sign(#"{"alg":"ES256","kid":"ES256"}"#, payload, with: es)),
            ("header-deep", sign(#"{"alg":"ES256","typ":"at+jwt","kid":"ES256","x":[[[[[[[[[[1]]]]]]]]]]}"#, payload, with: es)),
            ("payload-deep", sign(header("ES256", kid: "ES256"), claims(#","deep":"# + String(repeating: "[", count: 40) + String(repeating: "]", count: 40)), with: es)),
            ("exp-huge-integer", sign(header("ES256", kid: "ES256"), claims(exp: "99999999999999999999999999"), with: es)),
            ("exp-float", sign(header("ES256", kid: "ES256"), claims(exp: "1800003600.0"), with: es)),
            ("exp-exponent", sign(header("ES256", kid: "ES256"), claims(exp: "18000036e2"), with: es)),
            ("exp-overflow", sign(header("ES256", kid: "ES256"), claims(exp: "1e400"), with: es)),
            ("exp-int64-min", sign(header("ES256", kid: "ES256"), claims(exp: "-9223372036854775808"), with: es)),
            ("exp-int64-max", sign(header("ES256", kid: "ES256"), claims(exp: "9223372036854775807"), with: es)),
            ("aud-wildcard", sign(header("ES256", kid: "ES256"), claims(aud: #"["*"]"#), with: es)),
            ("aud-string", sign(header("ES256", kid: "ES256"), claims(aud: #""cluster1""#), with: es)),
            ("aud-other", sign(header("ES256", kid: "ES256"), claims(aud: #"["cluster2"]"#), with: es)),
            ("memberships", sign(header("ES256", kid: "ES256"), claims(#","memberships":{"sliderule":["owner"]},"sid":"s1","role":"admin""#), with: es)),
            ("refresh-type", sign(header("ES256", kid: "ES256"), claims().replacingOccurrences(of: #""token_type":"access""#, with: #""token_type":"refresh""#), with: es)),
            ("payload-not-object", sign(header("ES256", kid: "ES256"), "[1,2,3]", with: es)),
            ("jwe-five-parts", valid + ".AAAA.BBBB"),
            ("padded-signature", valid + "=="),
            ("signature-stray-bits", String(valid.dropLast()) + (valid.last == "A" ? "B" : "A")),
            ("empty-header", "." + parts[1] + "." + parts[2]),
            ("unicode-header", sign(#"{"alg":"ES256","typ":"at+jwt","kid":"ES256","n":"\ud83d\ude00 é"}"#, payload, with: es)),
            ("unpaired-surrogate", sign(#"{"alg":"ES256","typ":"at+jwt","kid":"ES256","n":"\ud83d"}"#, payload, with: es)),
        ]
        return seeds
    }
}
