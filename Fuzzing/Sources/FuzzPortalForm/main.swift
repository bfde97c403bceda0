import Foundation
import FuzzSupport

// What the portal reads from a browser before anything else, compiled from the server's own
// files: a form body (URLEncodedForm), the Cookie headers (PortalCookies) and the `next=` of a
// sign-in (SafeRedirect). Invariants beyond "no crash":
// - a refused form's reason is one of its fixed sentences, naming at most a plain parameter
//   name, never a value (forms carry passwords) or anything else a client made up;
// - an accepted form has no control character in a value, and encoding it again parses to the same;
// - a cookie value found is non-empty, holds no ';', and was in the input;
// - a redirect target is a path of this site: one leading '/', no backslash, no control character.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPortalForm(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    guard let text = String(validating: fuzzBytes(data, count), as: UTF8.self) else { return 0 }
    checkForm(text)
    checkCookies(text)
    checkRedirect(text)
    return 0
}

private func checkForm(_ text: String) {
    let form: URLEncodedForm
    do {
        form = try URLEncodedForm.parse(text)
    } catch {
        // Every refusal is one of three sentences, naming at most a plain parameter name.
        let named = #"^(parameter [A-Za-z0-9_.\-]{1,40}|a parameter) (is given more than once|contains control characters)$"#
        fuzzCheck(
            error.reason == "malformed form encoding" || error.reason.range(of: named, options: .regularExpression) != nil,
            "a refusal says more than its fixed sentence: \(error.reason.debugDescription.prefix(80))")
        return
    }
    for (name, value) in form.parameters {
        fuzzCheck(
            !value.unicodeScalars.contains { $0.properties.generalCategory == .control }, "\(name): a control character was accepted")
    }
    let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    let encoded = form.parameters.map { name, value in
        "\(name.addingPercentEncoding(withAllowedCharacters: unreserved)!)=\(value.addingPercentEncoding(withAllowedCharacters: unreserved)!)"
    }.joined(separator: "&")
    do {
        fuzzCheck(try URLEncodedForm.parse(encoded).parameters == form.parameters, "a form does not survive encoding again")
    } catch {
        fuzzCheck(false, "a form encoded again is refused: \(error.reason)")
    }
}

private func checkCookies(_ text: String) {
    let headers = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    for name in ["__Host-broker_session", "__Host-broker_pre", "broker_session"] {
        guard let value = PortalCookies.value(name, inCookieHeaders: headers) else { continue }
        fuzzCheck(!value.isEmpty, "an empty cookie value was returned")
        fuzzCheck(!value.contains(";"), "a cookie value holds a ';'")
        fuzzCheck(text.contains(value), "a cookie value that was not in the input")
    }
}

private func checkRedirect(_ text: String) {
    let target = SafeRedirect.target(text)
    fuzzCheck(target.hasPrefix("/") && !target.hasPrefix("//"), "a redirect off the site: \(target.prefix(40))")
    fuzzCheck(!target.contains("\\"), "a redirect with a backslash")
    fuzzCheck(
        !target.unicodeScalars.contains { $0.value < 0x21 || $0.properties.generalCategory == .control },
        "a redirect with a control character or a space")
}
