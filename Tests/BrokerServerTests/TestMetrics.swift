import Foundation
import Metrics
import Prometheus

/// The test process's one Prometheus registry: swift-metrics can be bootstrapped only once per
/// process, and every test of the process then counts into it, so tests compare a scrape
/// before and after what they do instead of expecting absolute values.
enum TestMetrics {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()
}

/// A Prometheus text exposition, parsed into samples.
struct MetricsScrape {
    struct Sample: Equatable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    let samples: [Sample]
    let text: String

    init(_ text: String) {
        self.text = text
        samples = text.split(separator: "\n").compactMap { Self.sample(String($0)) }
    }

    /// The value of the sample with exactly these labels; 0 when the series does not exist yet.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double {
        samples.first { $0.name == name && $0.labels == labels }?.value ?? 0
    }

    /// `after.delta(from: before, ...)`: how much a series grew between two scrapes.
    func delta(from before: MetricsScrape, _ name: String, _ labels: [String: String] = [:]) -> Double {
        value(name, labels) - before.value(name, labels)
    }

    func series(_ name: String) -> [Sample] { samples.filter { $0.name == name } }

    /// `name{a="1",b="2"} 3.5`, with `\\`, `\"` and `\n` escapes in label values.
    static func sample(_ line: String) -> Sample? {
        guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...])
        else { return nil }
        let series = line[..<space]
        guard let brace = series.firstIndex(of: "{") else {
            return Sample(name: String(series), labels: [:], value: value)
        }
        var labels: [String: String] = [:]
        var rest = series[series.index(after: brace)...].dropLast()  // without the closing brace
        while let equals = rest.firstIndex(of: "=") {
            let key = String(rest[..<equals]).trimmingCharacters(in: CharacterSet(charactersIn: ","))
            rest = rest[rest.index(equals, offsetBy: 2)...]  // past `="`
            var text = ""
            var escaped = false
            var index = rest.startIndex
            while index < rest.endIndex {
                let character = rest[index]
                index = rest.index(after: index)
                if escaped {
                    text.append(character == "n" ? "\n" : character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == "\"" {
                    break
                } else {
                    text.append(character)
                }
            }
            labels[key] = text
            rest = rest[index...]
        }
        return Sample(name: String(series[..<brace]), labels: labels, value: value)
    }
}
