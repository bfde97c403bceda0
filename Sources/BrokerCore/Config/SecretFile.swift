import Foundation

/// A secret kept in a file of its own rather than in the configuration or the environment
/// (`database_password_file`, `github_client_secret_file`): a Kubernetes or Docker secret, a
/// file only the broker's user can read. Its errors name the setting and the path, never the
/// contents.
///
/// ```swift
/// let secret = try SecretFile.readLine("/run/secrets/github", setting: "github_client_secret_file")
/// ```
public enum SecretFile {
    /// The file's first line. The line break an editor or `echo` adds (`\n`, or Windows' `\r\n`)
    /// is not part of the secret.
    /// - Throws: ``ConfigurationError`` when the file cannot be read or its first line is empty.
    public static func readLine(_ path: String, setting: String) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError("\(setting) \(path) cannot be read")
        }
        // By Character: `\r\n` is one, and a new line like `\n` (splitting on "\n" alone
        // would leave a Windows line whole, its break included).
        let line = text.split(maxSplits: 1, omittingEmptySubsequences: false, whereSeparator: \.isNewline).first ?? ""
        guard !line.isEmpty else { throw ConfigurationError("\(setting) \(path) is empty") }
        return String(line)
    }
}
