/// Where a sign-in may send the browser afterwards (`next=`): a path of this portal, never
/// another site. `//evil.example`, `/\evil.example`, schemes, and anything with control
/// characters or a backslash are refused, and the account page is used instead.
enum SafeRedirect {
    static let fallback = "/account"

    static func target(_ next: String?) -> String {
        guard let next, isSafe(next) else { return fallback }
        return next
    }

    static func isSafe(_ path: String) -> Bool {
        guard path.hasPrefix("/"), !path.hasPrefix("//"), path.count <= 512 else { return false }
        return !path.unicodeScalars.contains { scalar in
            scalar == "\\" || scalar.value < 0x21 || scalar.value == 0x7F || scalar.properties.generalCategory == .control
        }
    }
}
