import Foundation

/// An `application/x-www-form-urlencoded` body, read the one way every form route reads it (the
/// OAuth endpoints, the portal's forms): at most 64 KiB, UTF-8, each parameter at most once
/// (RFC 6749 section 3.2), values without control characters.
///
/// Parsing is here, with nothing HTTP, so that the fuzz target FuzzPortalForm compiles this
/// file as it is; reading it from a request is in URLEncodedForm+HTTP.swift.
///
/// ```swift
/// let form = try await URLEncodedForm.read(&request)
/// form.parameters["username"]
/// ```
package struct URLEncodedForm: Sendable {
    package let parameters: [String: String]

    /// Why a body is not a form this broker accepts; `reason` is safe to show (it never quotes a value).
    package struct Malformed: Error, Sendable {
        package var reason: String
    }

    package init(parameters: [String: String]) {
        self.parameters = parameters
    }

    package static func parse(_ text: String) throws(Malformed) -> URLEncodedForm {
        var parameters: [String: String] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]), let value = decode(parts.count > 1 ? parts[1] : "") else {
                throw Malformed(reason: "malformed form encoding")
            }
            guard parameters[name] == nil else {
                throw Malformed(reason: "\(shown(name)) is given more than once")
            }
            guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw Malformed(reason: "\(shown(name)) contains control characters")
            }
            parameters[name] = value
        }
        return URLEncodedForm(parameters: parameters)
    }

    /// How a refusal names a parameter: a name of a form (letters, digits, `_.-`, up to 40) as
    /// it is, anything else not at all, so that a refusal never carries what a client made up.
    static func shown(_ name: String) -> String {
        let plain = !name.isEmpty && name.utf8.count <= 40 && name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2E || byte == 0x2D
        }
        return plain ? "parameter \(name)" : "a parameter"
    }

    static func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
