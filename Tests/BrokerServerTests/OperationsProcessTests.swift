import Foundation
import XCTest

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The real `broker serve` process: JSON log lines, and SIGTERM draining requests in flight.
final class OperationsProcessTests: XCTestCase {
    static let login = #"{"username":"alice","password":"correct horse battery staple","org_name":"org1"}"#

    func testJSONLogLinesParseAndCarryTheRequestID() async throws {
        let broker = try BrokerBinary.make(extraConfig: #"log_format: "json""#)
        defer { broker.cleanUp() }
        try Self.addAliceToOrg1(broker)
        let (server, port, log) = try Self.serve(broker)
        defer { Self.stop(server) }

        let reply = try await Self.postLogin(port: port, requestID: "json-log-1")
        XCTAssertEqual(reply.status, 200, reply.text)
        XCTAssertEqual(reply.header("X-Request-ID"), "json-log-1")
        kill(server.processIdentifier, SIGTERM)
        try await Self.waitForExit(server)
        XCTAssertEqual(server.terminationStatus, 0)

        let text = try String(contentsOf: log, encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertGreaterThan(lines.count, 3, text)
        var objects: [[String: Any]] = []
        for line in lines {
            let object = try XCTUnwrap(
                try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(line)")
            for member in ["time", "level", "label", "message"] {
                XCTAssertNotNil(object[member] as? String, "\(member) in \(line)")
            }
            let time = try XCTUnwrap(object["time"] as? String)
            XCTAssertNotNil(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/), time)
            XCTAssertTrue(object.values.allSatisfy { $0 is String }, "metadata is flattened to strings: \(line)")
            objects.append(object)
        }
        let ours = objects.filter { $0["request_id"] as? String == "json-log-1" }
        XCTAssertTrue(
            ours.contains { $0["message"] as? String == "POST /api/org_token/ 200" && $0["route"] as? String == "/api/org_token" },
            text)
        XCTAssertTrue(ours.contains { $0["message"] as? String == "login" }, "the core service's line too: \(text)")
        XCTAssertFalse(text.contains("correct horse"), "no password in the logs")
        XCTAssertFalse(text.contains(#"\"access\""#))
    }

    func testSIGTERMLetsTheRequestInFlightFinishThenExitsZero() async throws {
        var broker = try BrokerBinary.make()
        defer { broker.cleanUp() }
        // A wrong password is answered no sooner than login_failure_floor_ms after it arrived:
        // a request that is certainly in flight when SIGTERM comes, without burning CPU on a
        // slow hash (which made this test depend on the machine's load).
        broker.environment["BROKER_LOGIN_FAILURE_FLOOR_MS"] = "3000"
        try Self.addAliceToOrg1(broker)
        let (server, port, log) = try Self.serve(broker)
        defer { Self.stop(server) }

        let started = ContinuousClock.now
        let inFlight = Task {
            try await RealGateway.request(
                "http://127.0.0.1:\(port)/api/org_token/", method: "POST",
                headers: ["Content-Type": "application/json", "X-Request-ID": "drained-1"],
                body: Data(#"{"username":"alice","password":"not her password","org_name":"org1"}"#.utf8))
        }
        try await Task.sleep(for: .milliseconds(500))
        kill(server.processIdentifier, SIGTERM)
        let reply = try await inFlight.value
        XCTAssertEqual(reply.status, 401, reply.text)
        XCTAssertEqual((try JSONSerialization.jsonObject(with: reply.body) as? [String: Any])?["error"] as? String, "invalid_credentials", reply.text)
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .seconds(3), "answered in full, after the floor")

        try await Self.waitForExit(server)
        let logged = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        XCTAssertEqual(server.terminationReason, .exit, logged)
        XCTAssertEqual(server.terminationStatus, 0, logged)
        do {
            let late = try await Self.postLogin(port: port, requestID: "too-late")
            XCTFail("a request after shutdown was answered: \(late.status)")
        } catch {
            // Nothing listens any more.
        }
    }

    // MARK: helpers

    static func addAliceToOrg1(_ broker: BrokerBinary) throws {
        let added = try broker.run(["users", "add", "alice", "--password-stdin"], stdin: "correct horse battery staple\n")
        XCTAssertEqual(added.status, 0, added.stderr)
        XCTAssertEqual(try broker.run(["orgs", "add", "org1"]).status, 0)
        XCTAssertEqual(try broker.run(["members", "add", "org1", "alice"]).status, 0)
    }

    /// `broker serve` with its standard error in a file of the work directory.
    static func serve(_ broker: BrokerBinary) throws -> (Process, Int, URL) {
        let log = broker.workDirectory.appendingPathComponent("serve.stderr")
        guard FileManager.default.createFile(atPath: log.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown)
        }
        let handle = try FileHandle(forWritingTo: log)
        let (server, port) = try broker.serve(standardError: handle)
        return (server, port, log)
    }

    static func postLogin(port: Int, requestID: String) async throws -> RealGateway.Reply {
        try await RealGateway.request(
            "http://127.0.0.1:\(port)/api/org_token/", method: "POST",
            headers: ["Content-Type": "application/json", "X-Request-ID": requestID], body: Data(login.utf8))
    }

    /// Waits without blocking a thread of the concurrency pool (a blocked pool thread could
    /// keep the in-flight request's reply from being delivered).
    static func waitForExit(_ process: Process) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while process.isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTAssertFalse(process.isRunning, "the broker did not exit")
    }

    static func stop(_ process: Process) {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}
