import BrokerCore
import BrokerSync
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// The generation-1 client's scaling calls over real HTTP on loopback: without `provisioner_url`
/// a 501 the 4.x client can print; with it, calls forwarded to a stand-in provisioner (a scripted
/// loopback server) for the holder of a good token only, with the identity headers a gateway
/// adds and without the token.
final class ScalingHTTPTests: XCTestCase {
    /// What a SlideRule provisioner answers `org_num_nodes`.
    static let nodeCounts = #"{"status":"SUCCESS","min_nodes":1,"max_nodes":10,"current_nodes":2,"version":"latest"}"#

    static func json(_ body: String, status: String = "200 OK") -> ScriptedHTTPServer.Answer {
        .bytes(ScriptedAnswer.http(status: status, headers: ["Content-Type: application/json"], body: Array(body.utf8)))
    }

    /// A harness whose `provisioner_url` names `server` (under the path prefix `/ps`), bob a
    /// member of org2.
    func harness(provisioner server: ScriptedHTTPServer?, timeout: Int = 10) async throws -> ServerHarness {
        let harness = try await ServerHarness.make { configuration in
            if let server { configuration.provisionerURL = "http://127.0.0.1:\(server.port)/ps/" }
            configuration.provisionerTimeout = timeout
        }
        try await harness.services.accounts.addMember(organization: "org2", username: "bob", role: .owner, by: .operator)
        return harness
    }

    func auditLines(_ harness: ServerHarness, action: String = "cluster.scale") throws -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: harness.services.configuration.auditLogPath, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }.filter { $0["action"] as? String == action }
    }

    /// The four calls of the 4.x client for org1, as it spells them.
    static let calls: [(HTTPRequest.Method, String)] = [
        (.get, "/api/org_num_nodes/org1/"),
        (.put, "/api/desired_org_num_nodes/org1/3/"),
        (.post, "/api/desired_org_num_nodes_ttl/org1/3/15/"),
        (.get, "/api/org_ip_adr/org1/"),
    ]

    /// An error answer in the shape every old client reads: `error`, `detail`, `error_msg`, `status`.
    static func assertScalingError(
        _ answer: APIAnswer, _ status: HTTPResponse.Status, _ code: String, _ label: String, line: UInt = #line
    ) {
        XCTAssertEqual(answer.status, status, label, line: line)
        XCTAssertEqual(answer.error, code, "\(label): \(answer.body)", line: line)
        XCTAssertEqual(Set(answer.body.keys), ["error", "detail", "error_msg", "status"], label, line: line)
        XCTAssertEqual(answer.body["status"] as? String, "FAILED", label, line: line)
        XCTAssertEqual(answer.body["error_msg"] as? String, answer.body["detail"] as? String, label, line: line)
        XCTAssertEqual(answer.headers[.contentType], "application/json", label, line: line)
    }

    // MARK: - No provisioner

    func testWithoutAProvisionerEveryCallIsA501TheOldClientPrints() async throws {
        let harness = try await harness(provisioner: nil)
        try await harness.withClient { client in
            let access = try await client.orgTokens("alice", "org1").access
            for (method, path) in Self.calls {
                let answer = try await client.api(method, path, token: access)
                Self.assertScalingError(answer, .notImplemented, "not_implemented", "\(method) \(path)")
                let message = answer.body["error_msg"] as? String ?? ""
                XCTAssertTrue(message.contains("not handled by this broker"), message)
                XCTAssertTrue(message.contains("provisioner_url"), message)
                // Without the trailing slash too.
                let bare = try await client.api(method, String(path.dropLast()), token: access)
                XCTAssertEqual(bare.status, .notImplemented, "\(method) \(path) without the slash")
            }
        }
        XCTAssertTrue(try auditLines(harness).isEmpty, "nothing was asked of anyone")
        try await harness.shutdown()
    }

    /// Strangers learn nothing about the broker's setup: the token comes before the 501.
    func testWithoutAProvisionerTheTokenIsCheckedFirst() async throws {
        let harness = try await harness(provisioner: nil)
        try await harness.withClient { client in
            let bob = try await client.orgTokens("bob", "org2").access
            for (method, path) in Self.calls {
                let label = "\(method) \(path)"
                var answer = try await client.api(method, path)
                Self.assertScalingError(answer, .unauthorized, "missing_token", label)
                XCTAssertEqual(answer.headers[.wwwAuthenticate], #"Bearer realm="broker""#, label)
                answer = try await client.api(method, path, token: "not.a.token")
                Self.assertScalingError(answer, .unauthorized, "invalid_token", label)
                XCTAssertTrue(answer.headers[.wwwAuthenticate]?.hasPrefix(#"Bearer realm="broker", error="invalid_token""#) == true)
                answer = try await client.api(method, path, token: bob)
                Self.assertScalingError(answer, .forbidden, "forbidden", label)
                XCTAssertTrue(
                    answer.headers[.wwwAuthenticate]?.hasPrefix(#"Bearer realm="broker", error="insufficient_scope""#) == true)
            }
        }
        try await harness.shutdown()
    }

    // MARK: - Forwarding

    func testForwardedCallsCarryTheIdentityAndNotTheToken() async throws {
        let server = try ScriptedHTTPServer { head in
            head.hasPrefix("GET /ps/api/org_ip_adr/")
                ? Self.json(#"{"status":"SUCCESS","ip_address":"192.0.2.10"}"#) : Self.json(Self.nodeCounts)
        }
        defer { server.stop() }
        let harness = try await harness(provisioner: server)
        try await harness.services.accounts.addMember(organization: "org1", username: "bob", role: .admin, by: .operator)
        try await harness.withClient { client in
            let access = try await client.orgTokens("alice", "org1").access
            // Headers a client must not get through: its own identity headers, a cookie, a forged origin.
            let hostile: HTTPFields = [
                HTTPField.Name("x-sliderule-account")!: "root", HTTPField.Name("X-SlideRule-Org-Roles")!: "owner",
                HTTPField.Name("x-sliderule-client")!: "python-v4.20.0", .cookie: "__Host-broker-session=abc",
                HTTPField.Name("X-Forwarded-For")!: "203.0.113.9", HTTPField.Name("Forwarded")!: "for=203.0.113.9",
                HTTPField.Name("X-Forwarded-Proto")!: "https",
            ]
            var answer = try await client.api(.get, "/api/org_num_nodes/org1/?probe=1", token: access, headers: hostile)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(answer.body["max_nodes"] as? Int, 10)
            XCTAssertEqual(answer.body["min_nodes"] as? Int, 1)
            XCTAssertEqual(answer.headers[.contentType], "application/json")
            XCTAssertEqual(answer.headers[.cacheControl], "no-store")

            answer = try await client.api(.put, "/api/desired_org_num_nodes/org1/3/", token: access)
            XCTAssertEqual(answer.status, .ok)
            answer = try await client.api(
                .post, "/api/desired_org_num_nodes_ttl/org1/3/15/", token: access, json: #"{"note":"from the client"}"#)
            XCTAssertEqual(answer.status, .ok)
            answer = try await client.api(.get, "/api/org_ip_adr/org1", token: access)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(answer.body["ip_address"] as? String, "192.0.2.10")
            // bob's roles at org1 are an admin's.
            let bob = try await client.orgTokens("bob", "org1").access
            answer = try await client.api(.get, "/api/org_num_nodes/org1/", token: bob)
            XCTAssertEqual(answer.status, .ok)
            // On the wire as a proxy would send it (the test client sets Connection itself):
            // what Connection names is hop-by-hop too, and Host becomes X-Forwarded-Host.
            let raw = try await RawHTTPClient.exchange(
                port: try XCTUnwrap(client.port),
                "GET /api/org_ip_adr/org1/ HTTP/1.1\r\nHost: ps.broker.test\r\nAuthorization: Bearer \(access)\r\n"
                    + "Connection: close, x-drop-me\r\nx-drop-me: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\r\n")
            XCTAssertTrue(String(decoding: raw, as: UTF8.self).hasPrefix("HTTP/1.1 200"), String(decoding: raw, as: UTF8.self))

            let heads = server.received
            XCTAssertEqual(heads.count, 6)
            XCTAssertEqual(heads.map { $0.split(separator: "\r\n").first.map(String.init) ?? "" }, [
                "GET /ps/api/org_num_nodes/org1/?probe=1 HTTP/1.1",
                "PUT /ps/api/desired_org_num_nodes/org1/3/ HTTP/1.1",
                "POST /ps/api/desired_org_num_nodes_ttl/org1/3/15/ HTTP/1.1",
                "GET /ps/api/org_ip_adr/org1/ HTTP/1.1",
                "GET /ps/api/org_num_nodes/org1/ HTTP/1.1",
                "GET /ps/api/org_ip_adr/org1/ HTTP/1.1",
            ])
            for head in heads {
                let fields = Self.fields(head)
                XCTAssertNil(fields["authorization"], head)
                XCTAssertFalse(head.contains(access), "the token never reaches the provisioner")
                XCTAssertEqual(fields["x-forwarded-for"], ["127.0.0.1"], head)
                XCTAssertEqual(fields["x-forwarded-proto"], ["http"], "the peer is no trusted proxy")
                XCTAssertNotNil(fields["x-request-id"], head)
            }
            let first = Self.fields(heads[0])
            XCTAssertEqual(first["x-sliderule-account"], ["alice"])
            XCTAssertEqual(first["x-sliderule-org-roles"], ["member"])
            XCTAssertEqual(first["x-sliderule-client"], ["python-v4.20.0"], "the client's own header passes")
            XCTAssertLessThanOrEqual(first["x-forwarded-host"]?.count ?? 0, 1, "the Host the client named, once")
            XCTAssertEqual(first["host"], ["127.0.0.1:\(server.port)"])
            for withheld in ["cookie", "forwarded"] {
                XCTAssertNil(first[withheld], "\(withheld) must not be passed on")
            }
            let last = Self.fields(heads[5])
            XCTAssertEqual(last["x-forwarded-host"], ["ps.broker.test"])
            for withheld in ["x-drop-me", "keep-alive", "te"] {
                XCTAssertNil(last[withheld], "\(withheld) must not be passed on: \(heads[5])")
            }
            XCTAssertEqual(Self.fields(heads[4])["x-sliderule-account"], ["bob"])
            XCTAssertEqual(Self.fields(heads[4])["x-sliderule-org-roles"], [Role.admin.impliedRoles.joined(separator: " ")])
            XCTAssertEqual(server.receivedBodies[2], Array(#"{"note":"from the client"}"#.utf8))
            XCTAssertEqual(Self.fields(heads[2])["content-type"], ["application/json"])
        }

        // The two changes are audited, the readings are not.
        let lines = try auditLines(harness)
        XCTAssertEqual(lines.map { $0["outcome"] as? String }, ["success", "success"])
        XCTAssertEqual(lines.map { $0["reason"] as? String }, ["desired_nodes=3", "desired_nodes=3 ttl=15"])
        for line in lines {
            XCTAssertEqual(line["actor"] as? String, "alice")
            XCTAssertEqual(line["org"] as? String, "org1")
            XCTAssertEqual(line["client_ip"] as? String, "127.0.0.1")
            XCTAssertNotNil(line["request_id"] as? String)
            let event = AuditEvent(
                time: Date(), action: .clusterScale, outcome: .success, actor: line["actor"] as? String,
                organization: line["org"] as? String)
            XCTAssertTrue(AuditAction.catalogue.first { $0.action == .clusterScale }?.admits(event) ?? false)
        }
        XCTAssertFalse(harness.logs.all.contains { $0.contains("Bearer") }, "the token is never logged")
        try await harness.shutdown()
    }

    /// The provisioner's own refusals reach the client as they are (it writes `error_msg`).
    func testTheProvisionersAnswerPassesThroughWhateverItsStatus() async throws {
        let refusal = #"{"status":"FAILED","error_msg":"org1 may not have more than 10 nodes"}"#
        let server = try ScriptedHTTPServer { _ in Self.json(refusal, status: "409 Conflict") }
        defer { server.stop() }
        let harness = try await harness(provisioner: server)
        try await harness.withClient { client in
            let access = try await client.orgTokens("alice", "org1").access
            let answer = try await client.api(.post, "/api/desired_org_num_nodes_ttl/org1/99/15/", token: access)
            XCTAssertEqual(answer.status, .conflict)
            XCTAssertEqual(answer.body["error_msg"] as? String, "org1 may not have more than 10 nodes")
        }
        let lines = try auditLines(harness)
        XCTAssertEqual(lines.map { $0["outcome"] as? String }, ["success", "failure"])
        XCTAssertEqual(lines.last?["reason"] as? String, "provisioner_status=409")
        try await harness.shutdown()
    }

    // MARK: - Refusals

    func testRefusedCallsReachNoProvisioner() async throws {
        let server = try ScriptedHTTPServer { _ in Self.json(Self.nodeCounts) }
        defer { server.stop() }
        let harness = try await harness(provisioner: server)
        try await harness.withClient { client in
            let alice = try await client.orgTokens("alice", "org1").access
            let bob = try await client.orgTokens("bob", "org2").access
            for (method, path) in Self.calls {
                let label = "\(method) \(path)"
                Self.assertScalingError(try await client.api(method, path), .unauthorized, "missing_token", label)
                Self.assertScalingError(
                    try await client.api(method, path, token: alice + "x"), .unauthorized, "invalid_token", label)
                Self.assertScalingError(
                    try await client.api(method, path, headers: [.authorization: "Basic YWxpY2U6cHc="]), .unauthorized,
                    "invalid_token", label)
                // A token of another organization, whose holder is no member of org1.
                Self.assertScalingError(try await client.api(method, path, token: bob), .forbidden, "forbidden", label)
            }
            // bob's token for org2 is good for org2's cluster.
            let answer = try await client.api(.get, "/api/org_num_nodes/org2/", token: bob)
            XCTAssertEqual(answer.status, .ok)
            XCTAssertEqual(server.received.count, 1)
            // A body over 64 KiB is refused before anything is recorded or asked.
            let oversized = try await client.api(
                .post, "/api/desired_org_num_nodes_ttl/org1/3/15/", token: alice,
                json: #"{"pad":""# + String(repeating: "x", count: 70_000) + #""}"#)
            Self.assertScalingError(oversized, .contentTooLarge, "payload_too_large", "a body over 64 KiB")

            // A removed member is refused at once, whatever the token still says.
            try await harness.services.accounts.removeMember(organization: "org1", username: "alice", by: .operator)
            for (method, path) in Self.calls {
                Self.assertScalingError(
                    try await client.api(method, path, token: alice), .forbidden, "not_a_member", "\(method) \(path)")
            }
            // A disabled account's tokens are refused as everywhere else (401 account_disabled).
            try await harness.services.accounts.setActive("bob", false, by: .operator)
            Self.assertScalingError(
                try await client.api(.get, "/api/org_num_nodes/org2/", token: bob), .unauthorized, "account_disabled", "disabled")
            XCTAssertEqual(server.received.count, 1, "nothing more was forwarded")
        }
        // Refused changes by an identified holder are denied lines; unknown tokens write none.
        let lines = try auditLines(harness)
        XCTAssertEqual(lines.map { $0["outcome"] as? String }, ["denied", "denied", "denied", "denied"])
        XCTAssertEqual(lines.map { $0["reason"] as? String }, ["forbidden", "forbidden", "not_a_member", "not_a_member"])
        XCTAssertEqual(lines.map { $0["actor"] as? String }, ["bob", "bob", "alice", "alice"])
        try await harness.shutdown()
    }

    func testHostilePathValuesAreRefusedBeforeAnything() async throws {
        let server = try ScriptedHTTPServer { _ in Self.json(Self.nodeCounts) }
        defer { server.stop() }
        let harness = try await harness(provisioner: server)
        try await harness.withClient { client in
            let access = try await client.orgTokens("alice", "org1").access
            for value in ["-1", "1e9", "1.5", "+3", "0x10", "%20%31", "1%00", "99999999999999999999", "1000001", "%2E%2E", "3%2F..", ""] {
                for path in ["/api/desired_org_num_nodes/org1/\(value)/", "/api/desired_org_num_nodes_ttl/org1/3/\(value)/"] {
                    let method: HTTPRequest.Method = path.contains("_ttl") ? .post : .put
                    let answer = try await client.api(method, path, token: access)
                    if value.isEmpty {
                        // No segment at all: refused one way or another.
                        XCTAssertTrue([400, 404].contains(answer.status.code), "\(path): \(answer.status)")
                    } else {
                        Self.assertScalingError(answer, .badRequest, "invalid_request", path)
                        XCTAssertFalse((answer.body["detail"] as? String ?? "").contains(value), "the value is not echoed")
                    }
                }
            }
            // The largest allowed, and a number spelled with leading zeros, are passed on in plain decimal.
            let largest = try await client.api(.put, "/api/desired_org_num_nodes/org1/1000000/", token: access)
            XCTAssertEqual(largest.status, .ok)
            let padded = try await client.api(.post, "/api/desired_org_num_nodes_ttl/org1/007/0/", token: access)
            XCTAssertEqual(padded.status, .ok)
            // Paths that climb or name another organization reach no route, or a refusal.
            for (method, path) in [
                (HTTPRequest.Method.get, "/api/org_num_nodes/../"), (.get, "/api/org_num_nodes/%2E%2E/"),
                (.get, "/api/org_num_nodes/org1%2F..%2Forg2/"), (.put, "/api/desired_org_num_nodes/org1/../3/"),
                (.get, "/api/org_ip_adr/org1/extra/"), (.get, "/api/org_num_nodes/ORG1/"),
            ] {
                let answer = try await client.api(method, path, token: access)
                XCTAssertTrue([400, 403, 404].contains(answer.status.code), "\(path): \(answer.status)")
                XCTAssertNotNil(answer.error, path)
            }
        }
        XCTAssertEqual(
            server.received.map { $0.split(separator: "\r\n").first.map(String.init) ?? "" },
            ["PUT /ps/api/desired_org_num_nodes/org1/1000000/ HTTP/1.1", "POST /ps/api/desired_org_num_nodes_ttl/org1/7/0/ HTTP/1.1"])
        try await harness.shutdown()
    }

    // MARK: - A provisioner in trouble

    func testAProvisionerThatIsDownIsA502() async throws {
        // A port that was free a moment ago: nothing listens there now.
        let closed = try ScriptedHTTPServer { _ in .bytes([]) }
        closed.stop()
        let harness = try await harness(provisioner: closed)
        try await harness.withClient { client in
            let access = try await client.orgTokens("alice", "org1").access
            for (method, path) in Self.calls {
                Self.assertScalingError(
                    try await client.api(method, path, token: access), .badGateway, "provisioner_unavailable", "\(method) \(path)")
            }
        }
        let lines = try auditLines(harness)
        XCTAssertEqual(lines.map { $0["outcome"] as? String }, ["success", "failure", "success", "failure"])
        XCTAssertEqual(lines.last?["reason"] as? String, "provisioner_unavailable")
        try await harness.shutdown()
    }

    func testAnAnswerOldClientsCannotReadIsA502() async throws {
        let answers: [ScriptedHTTPServer.Answer] = [
            .bytes(Array("this is not HTTP\r\n\r\n".utf8)),
            .bytes(ScriptedAnswer.http(status: "500 Internal Server Error", headers: ["Content-Type: text/html"], body: Array("<h1>oops</h1>".utf8))),
            Self.json("[1, 2]"),
            Self.json(#"{"truncated": "#),
            .bytes(ScriptedAnswer.http(status: "204 No Content", body: [])),
            Self.json(#"{"padding":""# + String(repeating: "x", count: 70_000) + #""}"#),
            .bytes(ScriptedAnswer.http(headers: ["Content-Type: application/json"], body: Array("{}".utf8) + Array(repeating: 0x20, count: 70_000), contentLength: false)),
        ]
        let index = Locked(0)
        let server = try ScriptedHTTPServer { _ in
            index.withLock { position in
                defer { position += 1 }
                return answers[min(position, answers.count - 1)]
            }
        }
        defer { server.stop() }
        let harness = try await harness(provisioner: server)
        try await harness.withClient { client in
            let access = try await client.orgTokens("alice", "org1").access
            for position in answers.indices {
                let answer = try await client.api(.get, "/api/org_num_nodes/org1/", token: access)
                Self.assertScalingError(answer, .badGateway, answer.error ?? "?", "answer \(position)")
                XCTAssertTrue(
                    ["provisioner_bad_response", "provisioner_unavailable"].contains(answer.error ?? ""), "answer \(position): \(answer.body)")
            }
        }
        try await harness.shutdown()
    }

    func testAProvisionerThatTakesTooLongIsA504() async throws {
        let server = try ScriptedHTTPServer { _ in
            .drip(head: Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".utf8), interval: 0.2)
        }
        defer { server.stop() }
        let silent = try ScriptedHTTPServer { _ in
            Thread.sleep(forTimeInterval: 3)
            return .bytes([])
        }
        defer { silent.stop() }
        for stalling in [server, silent] {
            let harness = try await harness(provisioner: stalling, timeout: 1)
            try await harness.withClient { client in
                let access = try await client.orgTokens("alice", "org1").access
                let start = ContinuousClock.now
                let answer = try await client.api(.put, "/api/desired_org_num_nodes/org1/3/", token: access)
                Self.assertScalingError(answer, .gatewayTimeout, "provisioner_timeout", "stalling provisioner")
                XCTAssertLessThan(ContinuousClock.now - start, .seconds(5))
            }
            try await harness.shutdown()
        }
    }

    /// The answers a provisioner brings about keep openapi.yaml: passed on (200, and 409 under
    /// `default`), or the broker's own 502 and 504.
    func testForwardedAnswersKeepTheContract() async throws {
        let contract = try OpenAPIContract.load()
        let server = try ScriptedHTTPServer { head in
            if head.hasPrefix("PUT ") { return Self.json(#"{"status":"FAILED","error_msg":"busy"}"#, status: "409 Conflict") }
            if head.hasPrefix("POST ") { return .bytes(Array("garbage\r\n\r\n".utf8)) }
            if head.hasPrefix("GET /ps/api/org_ip_adr/") {
                Thread.sleep(forTimeInterval: 2)
                return Self.json("{}")
            }
            return Self.json(Self.nodeCounts)
        }
        defer { server.stop() }
        let harness = try await harness(provisioner: server, timeout: 1)
        try await harness.withClient { client in
            let access = try await client.orgTokens("alice", "org1").access
            let expected: [(HTTPRequest.Method, String, HTTPResponse.Status)] = [
                (.get, "/api/org_num_nodes/org1/", .ok), (.put, "/api/desired_org_num_nodes/org1/3/", .conflict),
                (.post, "/api/desired_org_num_nodes_ttl/org1/3/15/", .badGateway), (.get, "/api/org_ip_adr/org1/", .gatewayTimeout),
            ]
            for (method, uri, status) in expected {
                let answer = try await client.execute(
                    uri: uri, method: method, headers: [.authorization: "Bearer \(access)"]
                ) { response in
                    LiveAnswer(
                        method: method, uri: uri, status: response.status, headers: response.headers,
                        body: Array(response.body.readableBytesView))
                }
                XCTAssertEqual(answer.status, status, uri)
                XCTAssertEqual(contract.violations(of: answer), [], uri)
            }
        }
        try await harness.shutdown()
    }

    /// `field name → values` of a request head, names in lower case.
    static func fields(_ head: String) -> [String: [String]] {
        var fields: [String: [String]] = [:]
        for line in head.split(separator: "\r\n").dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            fields[parts[0].lowercased(), default: []].append(parts[1].trimmingCharacters(in: .whitespaces))
        }
        return fields
    }
}
