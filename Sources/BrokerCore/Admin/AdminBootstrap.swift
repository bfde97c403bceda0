import Foundation
import Logging

/// Creates the first global admin from `bootstrap_admin` settings on the first start of an
/// empty store. There is never a default password: without one the broker refuses to start,
/// and once any account exists the settings are ignored (so a leftover variable cannot reset a
/// password or resurrect a deleted admin).
///
/// ```swift
/// try await AdminBootstrap(configuration).apply(using: accounts, logger: logger)
/// ```
public struct AdminBootstrap: Sendable {
    public let username: String
    public let password: String
    public let passwordFile: String

    public init(_ configuration: BrokerConfiguration) {
        username = configuration.bootstrapAdmin
        password = configuration.bootstrapAdminPassword
        passwordFile = configuration.bootstrapAdminPasswordFile
    }

    /// Returns the account it created, if any.
    @discardableResult
    public func apply(using accounts: AccountAdministration, logger: Logger) async throws -> User? {
        guard !username.isEmpty else { return nil }
        let empty = try await accounts.store.read { tx in try await tx.users(afterID: 0, limit: 1).isEmpty }
        guard empty else {
            logger.debug("bootstrap_admin ignored: the store already has accounts")
            return nil
        }
        let user = try await accounts.addUser(username, password: try readPassword(), globalRole: .admin, by: .operator)
        logger.notice("created the bootstrap admin", metadata: ["user": "\(user.username)"])
        return user
    }

    func readPassword() throws -> String {
        switch (password.isEmpty, passwordFile.isEmpty) {
        case (false, false):
            throw ConfigurationError("give bootstrap_admin_password or bootstrap_admin_password_file, not both")
        case (false, true):
            return password
        case (true, false):
            guard let data = FileManager.default.contents(atPath: passwordFile),
                let text = String(data: data, encoding: .utf8)
            else {
                throw ConfigurationError("bootstrap_admin_password_file \(passwordFile) cannot be read")
            }
            // A file written by `echo` ends with a newline that is not part of the password.
            return String(text.trimmingSuffix(while: { $0 == "\n" || $0 == "\r" }))
        case (true, true):
            throw ConfigurationError(
                "bootstrap_admin \(username) needs bootstrap_admin_password (e.g. BROKER_BOOTSTRAP_ADMIN_PASSWORD) or bootstrap_admin_password_file: there is no default password")
        }
    }
}

extension String {
    fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> Substring {
        var end = endIndex
        while end > startIndex, predicate(self[index(before: end)]) { end = index(before: end) }
        return self[..<end]
    }
}
