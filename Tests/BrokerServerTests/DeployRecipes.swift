import BrokerCore
import Foundation
import XCTest

/// The recipes in `deploy/` (systemd, container, compose, Kubernetes), read as files, and the
/// tools of this machine that can check them. There is no container engine here: what can be
/// checked is the text, parsed, and what `systemd-analyze` and `haproxy -c` say of it.
enum DeployRecipes {
    static var directory: URL { OpenAPIContract.repositoryRoot.appendingPathComponent("deploy") }

    static func url(_ path: String) -> URL { directory.appendingPathComponent(path) }

    static func text(_ path: String) throws -> String { try String(contentsOf: url(path), encoding: .utf8) }

    /// Every file under `deploy/`, as paths relative to it.
    static func allFiles() throws -> [String] {
        let base = directory.standardizedFileURL.path + "/"
        guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey]) else {
            return []
        }
        return walker.compactMap { item -> String? in
            guard let file = item as? URL, (try? file.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else {
                return nil
            }
            return String(file.standardizedFileURL.path.dropFirst(base.count))
        }.sorted()
    }

    /// The default of `shutdown_grace`, read from the code: every supervisor's stop timeout
    /// must stay above it.
    static var defaultShutdownGrace: Int { BrokerConfiguration().shutdownGrace }

    /// The broker's port when nothing overrides it.
    static var defaultPort: Int { BrokerConfiguration().port }

    /// The first executable of that name on the usual paths, or nil.
    static func tool(_ name: String) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/usr/bin:/sbin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Outcome {
        var status: Int32
        /// Standard output and standard error together, as a person would read them.
        var output: String
    }

    /// Runs a tool to completion with both outputs in one file (never a pipe nobody drains).
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, in directory: URL? = nil)
        throws -> Outcome
    {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("deploy-tool-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = directory }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try handle.close()
        return Outcome(status: process.terminationStatus, output: try String(contentsOf: log, encoding: .utf8))
    }

    /// Seconds in a systemd time span as the unit writes it (`30s`, `30`, `1min`, `1min 30s`).
    static func systemdSeconds(_ span: String) -> Int? {
        var total = 0
        for part in span.split(separator: " ") {
            guard let match = part.wholeMatch(of: /(\d+)(s|sec|min|m)?/), let value = Int(match.1) else { return nil }
            total += match.2 == "min" || match.2 == "m" ? value * 60 : value
        }
        return span.isEmpty ? nil : total
    }

    /// Seconds in a Go duration or a number of seconds (`30s`, `1m30s`, `45`), as HAProxy,
    /// compose and Kubernetes write them.
    static func durationSeconds(_ text: String) -> Int? {
        if let plain = Int(text) { return plain }
        var total = 0
        var rest = Substring(text)
        while !rest.isEmpty {
            guard let match = rest.prefixMatch(of: /(\d+)(h|m|s)/), let value = Int(match.1) else { return nil }
            total += value * (match.2 == "h" ? 3600 : match.2 == "m" ? 60 : 1)
            rest = rest[match.range.upperBound...]
        }
        return total
    }
}

/// Navigating parsed YAML (`Yams.load`) in assertions: a missing or mistyped member is an empty
/// value, which the assertion that needed it then reports.
enum YAMLValue {
    static func map(_ value: Any?) -> [String: Any] {
        if let map = value as? [String: Any] { return map }
        guard let loose = value as? [AnyHashable: Any] else { return [:] }
        return Dictionary(uniqueKeysWithValues: loose.compactMap { key, item in (key.base as? String).map { ($0, item) } })
    }

    static func list(_ value: Any?) -> [Any] { value as? [Any] ?? [] }

    static func string(_ value: Any?) -> String? {
        switch value {
        case let text as String: text
        case let number as Int: String(number)
        case let flag as Bool: flag ? "true" : "false"
        default: nil
        }
    }

    static func int(_ value: Any?) -> Int? {
        if let number = value as? Int { return number }
        return (value as? String).flatMap { Int($0) }
    }

    /// `a.b.c` through nested mappings.
    static func at(_ value: Any?, _ path: String) -> Any? {
        path.split(separator: ".").reduce(value) { current, key in map(current)[String(key)] }
    }
}
