import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// `broker-bench http`: refresh grants or password logins over HTTP against running brokers —
/// one replica or several (requests go round-robin over `--target`s, so a chain's consecutive
/// refreshes land on different replicas, the hard case for single use). Prints one line with
/// the rate, p50 and p99 and the number of failed requests; scripts/bench-replicas.sh runs it
/// against 1, 2 and 3 replicas on PostgreSQL and a single SQLite broker in one run.
struct HTTPLoadBenchmark {
    enum Mode: String { case refresh, login }

    var targets: [String] = []
    var mode: Mode = .refresh
    var clients = 16
    var seconds: Double = 10
    var username = "bench"
    /// Client `i` logs in as `<username><i mod distinctUsers>` when set, as `username` otherwise:
    /// one user shared by every client measures the login throttle's per-user queue, not logins.
    var distinctUsers = 0
    var password = ""
    var organization = "bench"
    var label = ""

    init(parsing arguments: [String]) throws {
        var iterator = arguments.makeIterator()
        func value(_ name: String) throws -> String {
            guard let text = iterator.next() else { throw BenchError("\(name) needs a value") }
            return text
        }
        while let argument = iterator.next() {
            switch argument {
            case "--target": targets.append(try value(argument).trimmingCharacters(in: CharacterSet(charactersIn: "/")))
            case "--mode":
                guard let chosen = Mode(rawValue: try value(argument)) else { throw BenchError("--mode refresh|login") }
                mode = chosen
            case "--clients":
                guard let count = Int(try value(argument)), count > 0 else { throw BenchError("--clients N") }
                clients = count
            case "--seconds":
                guard let count = Double(try value(argument)), count > 0 else { throw BenchError("--seconds N") }
                seconds = count
            case "--user": username = try value(argument)
            case "--distinct-users":
                guard let count = Int(try value(argument)), count > 0 else { throw BenchError("--distinct-users N") }
                distinctUsers = count
            case "--password-file":
                password = try String(contentsOfFile: try value(argument), encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            case "--org": organization = try value(argument)
            case "--label": label = try value(argument)
            default: throw BenchError("unknown option \(argument)")
            }
        }
        guard !targets.isEmpty else { throw BenchError("--target http://HOST:PORT (repeatable)") }
        guard !password.isEmpty else { throw BenchError("--password-file FILE (the password of --user)") }
    }

    func run() async throws {
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: clients)))
        let recorder = LatencyRecorder()
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int(seconds * 1000))
        let failures = await withTaskGroup(of: Int.self) { group in
            for index in 0..<clients {
                group.addTask { await clientLoop(index, client: client, until: deadline, recorder: recorder) }
            }
            return await group.reduce(0, +)
        }
        try await client.shutdown()
        let elapsed = Throughput.elapsedSeconds(since: start)
        let latencies = recorder.sorted()
        func percentile(_ p: Double) -> String {
            guard !latencies.isEmpty else { return "-" }
            let value = latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
            return String(format: "%.1f ms", value * 1000)
        }
        let rate = Double(latencies.count) / elapsed
        print(
            "\(label.isEmpty ? "" : label + " ")\(mode == .refresh ? "refresh-grants" : "password-logins") "
                + "targets=\(targets.count) clients=\(clients) rate=\(String(format: "%.0f", rate))/s "
                + "p50=\(percentile(0.50)) p99=\(percentile(0.99)) ok=\(latencies.count) failed=\(failures)")
    }

    /// One client: logs in once, then rotates its own refresh chain (or logs in again and again)
    /// until the deadline. Returns how many requests failed; a failed refresh starts a new chain.
    private func clientLoop(
        _ index: Int, client: HTTPClient, until deadline: ContinuousClock.Instant, recorder: LatencyRecorder
    ) async -> Int {
        var turn = index
        var failures = 0
        var refresh: String?
        let username = distinctUsers > 0 ? "\(self.username)\(index % distinctUsers)" : self.username
        while ContinuousClock.now < deadline {
            let target = targets[turn % targets.count]
            turn += 1
            let began = ContinuousClock.now
            let answer: [String: Any]?
            if mode == .refresh, let token = refresh {
                answer = await post(client, target + "/api/org_token/refresh/", ["refresh": token])
            } else {
                answer = await post(
                    client, target + "/api/org_token/",
                    ["username": username, "password": password, "org_name": organization])
            }
            let took = Throughput.elapsedSeconds(since: began)
            guard let answer, let next = answer["refresh"] as? String else {
                failures += 1
                refresh = nil
                continue
            }
            // The first login of a refresh client sets its chain up; only grants are measured.
            if mode == .login || refresh != nil { recorder.record(took) }
            refresh = next
        }
        return failures
    }

    /// The answer's JSON object if it was a 200; nil for any other answer or a failed request.
    private func post(_ client: HTTPClient, _ url: String, _ body: [String: String]) async -> [String: Any]? {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        do {
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
            let response = try await client.execute(request, timeout: .seconds(30))
            let bytes = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok else { return nil }
            return try JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any]
        } catch {
            return nil
        }
    }
}

/// Latencies of the requests of every client, in seconds.
final class LatencyRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Double] = []

    func record(_ seconds: Double) { lock.withLock { values.append(seconds) } }
    func sorted() -> [Double] { lock.withLock { values.sorted() } }
}
