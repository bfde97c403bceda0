/// The rules for names, shared by the CLI, the HTTP routes and imports (passwords: ``PasswordPolicy``).
public enum NamePolicy {
    /// Django's rule (1–150 letters, digits and `@.+-_`; letters and digits may be non-ASCII,
    /// as with Django's default `UnicodeUsernameValidator`) within the name profile of
    /// ``AccountName``: nothing invisible, at most 255 bytes, compared as a person reads it.
    @discardableResult
    public static func validateUsername(_ name: String) throws -> AccountName {
        try AccountName(username: name)
    }

    /// Organization and cluster names appear in URLs and in the `aud` claim: 1–100 ASCII letters,
    /// digits and `-_.`, not starting with a dot.
    public static func validateOrganizationName(_ name: String, what: String = "an organization name") throws {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x5F || byte == 0x2E
        }
        guard !name.isEmpty, name.utf8.count <= 100, allowed, !name.hasPrefix(".") else {
            throw BrokerError(
                .invalidOrganization, "\(what) has 1 to 100 characters: letters, digits and -_. (not starting with .)")
        }
    }

    /// GitHub's rule for logins: 1–39 ASCII letters, digits and single hyphens, not at either end.
    public static func validateGitHubLogin(_ login: String) throws {
        let bytes = Array(login.utf8)
        let allowed = bytes.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D
        }
        guard !bytes.isEmpty, bytes.count <= 39, allowed, bytes.first != 0x2D, bytes.last != 0x2D,
            !login.contains("--")
        else {
            throw BrokerError(.invalidUsername, "a GitHub login has 1 to 39 letters, digits and single hyphens")
        }
    }
}
