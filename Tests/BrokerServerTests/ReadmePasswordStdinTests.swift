import Foundation
import XCTest

/// The README's scripted account commands (`printf ... | broker users ... --password-stdin`) run
/// as written, without a terminal, against the real binary.
final class ReadmePasswordStdinTests: XCTestCase {
    static let readme = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("README.md")

    func testTheScriptedExamplesOfTheReadmeRunWithoutATerminal() throws {
        let text = try String(contentsOf: Self.readme, encoding: .utf8)
        // Each example is a line of a code block, or a code span, beginning with printf.
        let pattern = try NSRegularExpression(pattern: #"printf '%s\\n' "\$[A-Z_]+" \| [^`\n]*--password-stdin"#)
        let examples = pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).map {
            String(text[Range($0.range, in: text)!])
        }
        XCTAssertGreaterThanOrEqual(examples.count, 3, "users add, the first admin, passwd: \(examples)")
        XCTAssertTrue(examples.contains { $0.contains("users add") && $0.contains("--admin") }, "\(examples)")

        let broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        let executable = try BrokerBinary.executable.path
        for example in examples {
            let command = example
                .replacingOccurrences(of: ".build/release/broker ", with: "\(executable) ")
                .replacingOccurrences(of: "| broker ", with: "| \(executable) ")
            let shell = Process()
            shell.executableURL = URL(fileURLWithPath: "/bin/sh")
            shell.arguments = ["-c", command]
            var environment = broker.environment
            for variable in ["PASSWORD", "ALICE_PASSWORD", "ADMIN_PASSWORD"] { environment[variable] = "correct horse battery staple" }
            shell.environment = environment
            shell.currentDirectoryURL = broker.workDirectory
            shell.standardInput = FileHandle(forReadingAtPath: "/dev/null")
            let errors = Pipe()
            shell.standardError = errors
            shell.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            try shell.run()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            shell.waitUntilExit()
            XCTAssertEqual(shell.terminationStatus, 0, "\(example): \(stderr)")
        }
        let listed = try broker.run(["users", "list"])
        XCTAssertTrue(listed.stdout.contains("alice"), listed.stdout)
        XCTAssertTrue(listed.stdout.contains("NAME"), listed.stdout)
    }
}
