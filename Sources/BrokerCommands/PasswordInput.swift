import BrokerCore
import Foundation

/// Reads a new password: one line from standard input with `--password-stdin`, otherwise a
/// prompt without echo (asked twice) on the terminal.
enum PasswordInput {
    static func read(fromStandardInput: Bool) throws -> String {
        if fromStandardInput {
            guard let line = Swift.readLine(strippingNewline: true) else {
                throw BrokerError(.invalidPassword, "no password on standard input")
            }
            return line.hasSuffix("\r") ? String(line.dropLast()) : line
        }
        guard isatty(STDIN_FILENO) == 1 else {
            throw BrokerError(.invalidPassword, "standard input is not a terminal: use --password-stdin")
        }
        let first = try prompt("Password: ")
        let second = try prompt("Password (again): ")
        guard first == second else { throw BrokerError(.invalidPassword, "the passwords do not match") }
        return first
    }

    private static func prompt(_ text: String) throws -> String {
        FileHandle.standardError.write(Data(text.utf8))
        var saved = termios()
        tcgetattr(STDIN_FILENO, &saved)
        var silent = saved
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        defer {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = Swift.readLine(strippingNewline: true) else {
            throw BrokerError(.invalidPassword, "no password entered")
        }
        return line
    }
}
