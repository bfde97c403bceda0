/// RFC 8288 `Link` header parsing, enough for GitHub's pagination:
/// `<https://api.github.com/user/teams?page=2>; rel="next", <...?page=5>; rel="last"`.
enum LinkHeader {
    /// The target of the first link whose `rel` includes `relation`, across all given header
    /// values. Tolerates unquoted and multi-valued `rel`, extra parameters, odd spacing and
    /// commas inside `<...>`; returns nil on anything it cannot read rather than guessing.
    static func target(rel relation: String, in values: [String]) -> String? {
        for value in values {
            for link in links(in: value) where link.relations.contains(relation.lowercased()) {
                return link.target
            }
        }
        return nil
    }

    private static func links(in value: String) -> [(target: String, relations: [String])] {
        var result: [(String, [String])] = []
        var rest = Substring(value)
        while true {
            rest = rest.drop { $0 == " " || $0 == "\t" || $0 == "," }
            guard rest.first == "<", let close = rest.firstIndex(of: ">") else { return result }
            let target = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            // Parameters run until the next comma outside a quoted string.
            var parameters = ""
            var quoted = false
            while let character = rest.first {
                if character == "\"" { quoted.toggle() }
                if character == ",", !quoted { break }
                parameters.append(character)
                rest = rest.dropFirst()
            }
            var relations: [String] = []
            for parameter in parameters.split(separator: ";") {
                let pair = parameter.split(separator: "=", maxSplits: 1)
                guard pair.count == 2, pair[0].trimmingWhitespace().lowercased() == "rel" else { continue }
                var relValue = pair[1].trimmingWhitespace()
                if relValue.hasPrefix("\""), relValue.hasSuffix("\""), relValue.count >= 2 {
                    relValue = String(relValue.dropFirst().dropLast())
                }
                relations += relValue.lowercased().split(separator: " ").map(String.init)
            }
            result.append((target, relations))
        }
    }
}
