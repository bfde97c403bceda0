import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

/// Every series docs/operations.md lists as present from start-up is in the first scrape of a
/// freshly started `broker serve`, at 0, before any event: an alert on
/// `increase(broker_refresh_reuse_detected_total[10m]) > 0` sees the first reuse. The lists are
/// read from the page, so the page and the code cannot drift apart.
final class MetricsStartupProcessTests: XCTestCase {
    static let page = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/operations.md")

    /// The rows of the first table after the line `heading`, as trimmed cells.
    static func table(after heading: String) throws -> [[String]] {
        let lines = try String(contentsOf: page, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init)
        let start = try XCTUnwrap(lines.firstIndex { $0.hasPrefix(heading) }, "docs/operations.md has no \(heading)")
        let rows = lines[start...].drop { !$0.hasPrefix("|") }.prefix { $0.hasPrefix("|") }
        return rows.dropFirst(2).map { row in
            row.trimmingCharacters(in: .whitespaces).dropFirst().dropLast().split(separator: "|", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }

    static func spans(_ text: some StringProtocol) -> [String] {
        String(text).matches(of: /`([^`]+)`/).map { String($0.output.1) }
    }

    /// Every combination of the label values a cell such as "`kind`: `a` `b`; `outcome`: `c`" lists.
    static func combinations(_ cell: String) -> [[String: String]] {
        var combinations: [[String: String]] = [[:]]
        for group in cell.split(separator: ";") {
            let parts = group.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let label = spans(parts[0]).first else { continue }
            let values = spans(parts[1])
            combinations = combinations.flatMap { partial in values.map { partial.merging([label: $0]) { $1 } } }
        }
        return combinations
    }

    func testEveryDocumentedSeriesIsScrapedAtZeroBeforeAnyEvent() async throws {
        let metrics = try Self.table(after: "All names start with `broker_`")
        let types = Dictionary(uniqueKeysWithValues: metrics.map { (Self.spans($0[0]).first ?? $0[0], $0[1]) })
        let startup = try Self.table(after: "### Series present from start-up")
        let documented = startup.map { (name: Self.spans($0[0]).first ?? $0[0], cell: $0[1]) }
        XCTAssertEqual(Set(documented.map(\.name)), Set(types.keys), "both tables list the same metrics")
        XCTAssertTrue(types.keys.contains("broker_refresh_reuse_detected_total"))

        let binary = try BrokerBinary.make(extraConfig: "metrics_port: 0")
        defer { binary.cleanUp() }
        let (process, ports) = try MetricsListenerProcessTests.serve(binary)
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        let text = try await TestClient.withClient(host: "127.0.0.1", port: ports.metrics) { client in
            let response = try await client.execute(.init("/metrics", method: .get))
            XCTAssertEqual(response.status, .ok)
            return response.body.map { String(buffer: $0) } ?? ""
        }
        let scrape = MetricsScrape(text)

        var checked = 0
        for (name, cell) in documented {
            let type = try XCTUnwrap(types[name], name)
            if cell == "with the first request" { continue }
            if cell == "one series at 1, `version`: the running version" {
                let printed = try binary.run(["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                let version = try XCTUnwrap(printed.split(separator: " ").last.map(String.init), printed)
                XCTAssertEqual(
                    scrape.samples.filter { $0.name == name }, [.init(name: name, labels: ["version": version], value: 1)],
                    "\(name) carries what `broker --version` prints")
                checked += 1
                continue
            }
            if cell == "when the key ring is loaded" {
                XCTAssertFalse(scrape.series(name).isEmpty, "\(name) is set from the loaded ring")
                continue
            }
            let series: [[String: String]] = cell == "one series, no labels" ? [[:]] : Self.combinations(cell)
            if cell != "one series, no labels" {
                XCTAssertNotEqual(series, [[:]], "\(name): the cell lists no label values: \(cell)")
            }
            // A histogram is there when its count is.
            let sampleName = type == "histogram" ? name + "_count" : name
            for labels in series {
                let sample = scrape.samples.first { $0.name == sampleName && $0.labels == labels }
                XCTAssertEqual(sample?.value, 0, "\(sampleName)\(labels) is scraped at 0 before any event")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 50)
    }
}
