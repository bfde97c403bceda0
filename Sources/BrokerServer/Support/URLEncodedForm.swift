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
                throw Malformed(reason: "parameter \(name.prefix(40)) is given more than once")
            }
            guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw Malformed(reason: "parameter \(name.prefix(40)) contains control characters")
            }
            parameters[name] = value
        }
        return URLEncodedForm(parameters: parameters)
    }

    static func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
