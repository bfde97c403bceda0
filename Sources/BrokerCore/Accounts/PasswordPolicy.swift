/// The one password policy: what a login accepts as a password at all, and what may be set as
/// one. Every login route reads its password with ``validatePresented(_:field:)``; every path that
/// sets one (`broker users add`/`passwd`, the admin API, the bootstrap admin, all through
/// ``AccountAdministration``) applies ``validateNew(_:)``, which includes the login rule: no path
/// can set a password that every login would then refuse.
///
/// ```swift
/// try PasswordPolicy.validateNew(password)        // 400 invalid_password
/// try PasswordPolicy.validatePresented(password)  // 400 invalid_request, at login
/// ```
public enum PasswordPolicy {
    public static let minimumLength = 12
    public static let maximumLength = 1024

    /// What a login accepts: a non-empty string without control characters (Unicode category
    /// Cc: C0 with tab and newline, DEL, C1), as every string member of a JSON body.
    /// - Throws: ``ErrorCode/invalidRequest`` naming `field`.
    public static func validatePresented(_ password: String, field: String = "password") throws {
        guard !password.isEmpty else {
            throw BrokerError(.invalidRequest, "\(field) must not be empty")
        }
        guard !containsControlCharacters(password) else {
            throw BrokerError(.invalidRequest, "\(field) must not contain control characters")
        }
    }

    /// New passwords: what a login accepts, and 12 to 1024 characters, no composition rules
    /// (NIST SP 800-63B, which counts each Unicode code point as one character: a combining accent
    /// counts). Migrated hashes are not subject to this: they keep working whatever their length.
    /// - Throws: ``ErrorCode/invalidPassword``.
    public static func validateNew(_ password: String) throws {
        let length = password.unicodeScalars.count
        guard length >= minimumLength else {
            throw BrokerError(.invalidPassword, "a password needs at least \(minimumLength) characters")
        }
        guard length <= maximumLength else {
            throw BrokerError(.invalidPassword, "a password has at most \(maximumLength) characters")
        }
        do {
            try validatePresented(password)
        } catch {
            throw BrokerError(
                .invalidPassword,
                "a password must not contain control characters (tab, newline, NUL…): no login could use it")
        }
    }

    static func containsControlCharacters(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }
}
