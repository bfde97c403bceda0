import BrokerCore
import BrokerCrypto
import FuzzSupport

// A JSON request body as every JSON route reads it (JSONRequestBody, compiled from the server's
// own file), then the members the routes read, with the accessor each route uses, and the
// domain checks the values go to next (names, roles, passwords). Invariants beyond "no crash":
// - every refusal is a BrokerError with code invalid_request (a 400, never a 500);
// - a refusal never quotes the value it refuses (bodies carry passwords and tokens);
// - a string a route gets is non-empty and free of control characters;
// - an integer a route gets is within the range it asked for.

/// Every member a route reads as a required or optional string (docs/api.md).
private let stringMembers = [
    "username", "password", "org_name", "refresh", "pat", "device_code", "access_token", "role", "global_role",
    "name", "cluster_name",
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestBody(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    let body: JSONRequestBody
    do {
        body = try JSONRequestBody(bytes: fuzzBytes(data, count))
    } catch {
        checkRefusal(error, quoting: nil)
        return 0
    }
    for name in stringMembers {
        let quoted = body.members[name]?.string
        do {
            if let text = try body.optionalString(name) {
                fuzzCheck(!text.isEmpty, "\(name): an empty string was accepted")
                fuzzCheck(
                    !text.unicodeScalars.contains { $0.properties.generalCategory == .control },
                    "\(name): a control character was accepted")
                fuzzCheck(try body.string(name) == text, "\(name): string and optionalString disagree")
                domainChecks(name, text)
            }
        } catch {
            checkRefusal(error, quoting: quoted)
        }
    }
    do { _ = try body.optionalBool("force") } catch { checkRefusal(error, quoting: nil) }
    do {
        if let lifetime = try body.optionalInteger("access_lifetime", in: 1...Int64(Int32.max)) {
            fuzzCheck((1...Int64(Int32.max)).contains(lifetime), "an integer outside its range was accepted")
        }
    } catch {
        checkRefusal(error, quoting: nil)
    }
    do {
        for audience in try body.optionalStrings("audiences") ?? [] {
            _ = try? NamePolicy.validateOrganizationName(audience, what: "an audience")
        }
    } catch {
        checkRefusal(error, quoting: nil)
    }
    return 0
}

/// Where the routes send each value next.
private func domainChecks(_ name: String, _ text: String) {
    switch name {
    case "username": _ = try? NamePolicy.validateUsername(text)
    case "org_name", "name", "cluster_name": _ = try? NamePolicy.validateOrganizationName(text)
    case "password": _ = try? PasswordPolicy.validateNew(text)
    case "role": _ = Role(rawValue: text)
    case "global_role": _ = GlobalRole(rawValue: text)
    default: break
    }
}

private func checkRefusal(_ error: any Error, quoting value: String?) {
    guard let refusal = error as? BrokerError else {
        fuzzCheck(false, "a refusal that is not a BrokerError: \(type(of: error))")
        return
    }
    fuzzCheck(refusal.code == .invalidRequest, "a refusal with code \(refusal.code.rawValue), not invalid_request")
    if let value, value.count >= 8 {
        fuzzCheck(!"\(refusal)".contains(value), "a refusal quotes the value it refuses")
    }
}
