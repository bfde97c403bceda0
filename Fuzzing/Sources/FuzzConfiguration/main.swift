import BrokerCore
import Foundation
import FuzzSupport

// Configuration values as `broker` reads them from the environment and flags (and, after the
// YAML parser, from the file): each line `key=value` goes to BrokerConfiguration.set, a
// `github_orgs=<JSON>` line to setGitHubOrganizations as BROKER_GITHUB_ORGS does, then the
// whole is validated (ConfigurationLoader.load). The YAML parser itself (Yams) is not ours.
// Invariants beyond "no crash":
// - a validated configuration keeps its documented relations (issuer an http(s) URL without a
//   trailing slash; refresh_lifetime <= session_max_lifetime; jwks_max_age <= key_prepublication);
// - an error never quotes a secret's value (a password, the GitHub client secret).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfiguration(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    var configuration = BrokerConfiguration()
    for line in fuzzText(data, count).split(separator: "\n") {
        guard let equals = line.firstIndex(of: "=") else { continue }
        let key = String(line[..<equals])
        let value = String(line[line.index(after: equals)...])
        do {
            if BrokerConfiguration.structuredKeys.contains(key) {
                guard let json = try? JSONSerialization.jsonObject(with: Data(value.utf8)) else { continue }
                try configuration.setGitHubOrganizations(json, source: "fuzz")
            } else {
                try configuration.set(key, to: value, source: "fuzz")
            }
        } catch {
            // The secrets among the settings (`password_hash_concurrency` is not one, and a
            // `_file` key names a path).
            if ["bootstrap_admin_password", "github_client_secret"].contains(key), value.count >= 8 {
                fuzzCheck(!"\(error)".contains(value), "a configuration error quotes a secret")
            }
        }
    }
    guard (try? configuration.validate()) != nil else { return 0 }
    fuzzCheck(!configuration.issuer.hasSuffix("/"), "issuer keeps a trailing slash")
    fuzzCheck(
        configuration.issuer.hasPrefix("http://") || configuration.issuer.hasPrefix("https://"),
        "issuer is not an http(s) URL")
    fuzzCheck(configuration.refreshLifetime <= configuration.sessionMaxLifetime, "refresh outlives the session")
    fuzzCheck(configuration.jwksMaxAge <= configuration.keyPrepublication, "JWKS cached past key prepublication")
    return 0
}
