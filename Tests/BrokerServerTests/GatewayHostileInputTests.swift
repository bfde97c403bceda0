import BrokerCrypto
import BrokerGateway
import BrokerSync
import BrokerValidator
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import XCTest

/// `broker gateway` against a JWKS server that answers whatever an attacker (or a broken proxy)
/// would: it never crashes, never hangs, keeps answering from the keys it holds, refuses a JWKS
/// URL anyone on the path could answer, and writes one log line per event whatever a token holds.
final class GatewayHostileInputTests: XCTestCase {
    static let key = try! PrivateKey.generate(.es256)
    static let issuer = "https://login.example.org"

    static var jwks: [UInt8] {
        let jwk = try! JSONEncoder().encode(key.publicKey.jwk(kid: key.publicKey.thumbprint))
        return Array(#"{"keys":["#.utf8) + Array(jwk) + Array("]}".utf8)
    }

    /// A valid access token for cluster `c1`, signed by `key`, with `jti`.
    static func token(jti: String = "j1") throws -> String {
        let now = Int64(Date().timeIntervalSince1970)
        let claims = AccessTokenClaims(
            issuer: issuer, subject: "alice", audience: ["c1"], organization: "org1", organizationRoles: ["member"],
            issuedAt: now, notBefore: now, expiresAt: now + 600, tokenID: jti, authenticatedAt: now,
            authenticationMethods: ["pwd"], identityProvider: "local", userID: 1, username: "alice")
        return try JWSSigner(key: key, kid: key.publicKey.thumbprint).sign(payload: claims.encoded())
    }

    // MARK: Headers of a JWKS answer

    func testAValidJWKSWithHostileCacheControlAndETagIsUsed() async throws {
        // `Cache-Control: =` trapped the header parser and took the gateway down.
        for cacheControl in ["=", "max-age=\"", ",=,", "max-age=1, max-age=99999", "max-age=5, =, \"", "max-age=٥"] {
            let server = try ScriptedHTTPServer { _ in
                .bytes(ScriptedAnswer.http(
                    headers: ["Cache-Control: \(cacheControl)", "ETag: \"v1é\(String(repeating: "x", count: 300))\"", "Content-Type: application/json"],
                    body: Self.jwks))
            }
            defer { server.stop() }
            let source = HTTPJWKSSource(url: "http://127.0.0.1:\(server.port)/jwks.json", timeout: .seconds(5))
            let validator = GatewayApplication.validator(
                source: source, issuer: Self.issuer, leeway: 30, cache: JWKSCacheConfiguration(), logger: Self.silent)
            let result = await validator.validate(try Self.token(), cluster: "c1")
            try await source.shutdown()
            guard case .success(let identity) = result else { return XCTFail("\(cacheControl): \(result)") }
            XCTAssertEqual(identity.account, "alice")
        }
    }

    // MARK: Bodies and connections

    func testHugeSlowAndGarbageAnswersFailTheFetchInTime() async throws {
        let huge = [UInt8](repeating: UInt8(ascii: " "), count: 2 * 1024 * 1024)
        let answers: [(String, ScriptedHTTPServer.Answer)] = [
            ("a huge body, no length", .bytes(ScriptedAnswer.http(body: huge, contentLength: false))),
            ("a huge body, with length", .bytes(ScriptedAnswer.http(body: huge))),
            ("a length that lies", .bytes(ScriptedAnswer.http(headers: ["Content-Length: 99999999999"], body: [], contentLength: false))),
            ("a body that trickles", .drip(head: Array("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{".utf8), interval: 0.1)),
            ("a head that trickles", .drip(head: Array("HTTP/1.1 200 OK\r\nX-Slow: ".utf8), interval: 0.1)),
            ("not HTTP", .bytes(Array("\u{0}\u{ff}garbage\r\n\r\n".utf8))),
            ("a truncated body", .bytes(Array(ScriptedAnswer.http(headers: ["Content-Length: 500"], body: Self.jwks, contentLength: false).prefix(80)))),
            ("nothing", .bytes([])),
            ("not JSON", .bytes(ScriptedAnswer.http(body: [0xff, 0xfe, 0x00, 0x7b]))),
            ("a 500", .bytes(ScriptedAnswer.http(status: "500 Internal Server Error", body: Array("x".utf8)))),
        ]
        for (name, answer) in answers {
            let server = try ScriptedHTTPServer { _ in answer }
            defer { server.stop() }
            let source = HTTPJWKSSource(
                url: "http://127.0.0.1:\(server.port)/jwks.json", timeout: .milliseconds(800), connectTimeout: .seconds(1))
            let cache = JWKSCache(source: source)
            let started = Date()
            await cache.refresh()
            let elapsed = Date().timeIntervalSince(started)
            try await source.shutdown()
            let keys = await cache.currentKeys
            XCTAssertNil(keys, name)
            // The deadline is 0.8 s; the bound leaves room for a loaded machine, not for a hang.
            XCTAssertLessThan(elapsed, 10, "\(name): the fetch took \(elapsed) s")
        }
    }

    func testAFailingJWKSServerLeavesTheHeldKeysInService() async throws {
        let broken = Locked(false)
        let server = try ScriptedHTTPServer { _ in
            broken.withLock { $0 }
                ? .bytes(ScriptedAnswer.http(headers: ["Cache-Control: ="], body: Array("{\"keys\":[{".utf8)))
                : .bytes(ScriptedAnswer.http(headers: ["Cache-Control: max-age=0"], body: Self.jwks))
        }
        defer { server.stop() }
        let clock = ManualWallClock(Date())
        let source = HTTPJWKSSource(url: "http://127.0.0.1:\(server.port)/jwks.json", timeout: .seconds(5))
        let validator = GatewayApplication.validator(
            source: source, issuer: Self.issuer, leeway: 30, cache: JWKSCacheConfiguration(), logger: Self.silent,
            clock: clock)
        guard case .success = await validator.validate(try Self.token(), cluster: "c1") else { return XCTFail("first") }
        broken.withLock { $0 = true }
        clock.advance(by: 60)  // past the 10 s floor on max-age=0
        let result = await validator.validate(try Self.token(), cluster: "c1")
        try await source.shutdown()
        guard case .success = result else { return XCTFail("the held keys were dropped: \(result)") }
        XCTAssertGreaterThanOrEqual(server.received.count, 2, "the stale set was revalidated")
    }

    // MARK: The JWKS URL

    func testTheGatewayRefusesAJWKSURLThatIsNeitherHTTPSNorLoopback() throws {
        let binary = try BrokerBinary.make()
        defer { binary.cleanUp() }
        for url in [
            "http://login.example.org/.well-known/jwks.json", "http://10.0.0.1/jwks", "http://127.0.0.1.nip.io/jwks",
            "http://localhost.example.org/jwks", "http://127.1/jwks", "ftp://127.0.0.1/jwks",
        ] {
            let result = try binary.run(["gateway", "--jwks", url, "--issuer", Self.issuer, "--cluster", "c1", "--port", "0"])
            XCTAssertNotEqual(result.status, 0, url)
            XCTAssertTrue(result.stderr.contains("must be https"), "\(url): \(result.stderr)")
        }
    }

    func testASourceWithAForbiddenURLNeverFetches() async throws {
        let source = HTTPJWKSSource(url: "http://login.example.org/jwks.json")
        do {
            _ = try await source.fetch(ifNoneMatch: nil)
            XCTFail("fetched over plain http")
        } catch {
            XCTAssertTrue("\(error)".contains("must be https"), "\(error)")
        }
        try await source.shutdown()
    }

    // MARK: Logs

    func testAForgedNewlineInATokenIsLoggedEscapedInTextAndJSON() async throws {
        let server = try ScriptedHTTPServer { _ in .bytes(ScriptedAnswer.http(body: Self.jwks)) }
        defer { server.stop() }
        let forgedAlg = Base64URL.encode(Array(
            #"{"alg":"ES256\nFORGED alg","typ":"at+jwt","kid":"\#(Self.key.publicKey.thumbprint)"}"#.utf8))
        let forged = "\(forgedAlg).e30.AAAA"
        let forgedJTI = try Self.token(jti: "j1\nFORGED jti\r\u{2028}x")
        for (format, environment) in [("text", ["LOG_LEVEL": "debug"]), ("json", ["BROKER_LOG_LEVEL": "debug"])] {
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-\(UUID().uuidString).log")
            XCTAssertTrue(FileManager.default.createFile(atPath: log.path, contents: nil))
            defer { try? FileManager.default.removeItem(at: log) }
            let (process, port) = try BrokerBinary.startListening(
                [
                    "gateway", "--jwks", "http://127.0.0.1:\(server.port)/jwks.json", "--issuer", Self.issuer,
                    "--cluster", "c1", "--port", "0", "--log-format", format,
                ],
                environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("BROKER_") && $0.key != "LOG_LEVEL" }
                    .merging(environment) { $1 },
                standardError: try FileHandle(forWritingTo: log))
            try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                var response = try await client.execute(.init("/", method: .get, headers: [.authorization: "Bearer \(forged)"]))
                XCTAssertEqual(response.status, .unauthorized)
                response = try await client.execute(.init("/", method: .get, headers: [.authorization: "Bearer \(forgedJTI)"]))
                XCTAssertEqual(response.status, .ok)
            }
            process.terminate()
            process.waitUntilExit()
            let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: true)
            XCTAssertFalse(lines.isEmpty, format)
            for line in lines {
                XCTAssertFalse(line.hasPrefix("FORGED"), "\(format): a forged line: \(lines)")
                XCTAssertFalse(line.contains("\r") || line.contains("\u{2028}"), "\(format): \(line)")
                if format == "json" {
                    XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(line.utf8)), "\(format): \(line)")
                }
            }
            let all = lines.joined(separator: "\n")
            XCTAssertTrue(all.contains(#"ES256\u{A}FORGED alg"#) || all.contains(#"ES256\\u{A}FORGED alg"#), "\(format): \(all)")
            XCTAssertTrue(all.contains(#"FORGED jti"#), "\(format): the debug line of the allowed token: \(all)")
        }
    }

    func testTheGatewayRefusesAnUnknownLogFormatOrLevel() throws {
        let binary = try BrokerBinary.make()
        defer { binary.cleanUp() }
        let base = ["gateway", "--jwks", "http://127.0.0.1:1/jwks", "--issuer", Self.issuer, "--cluster", "c1"]
        var result = try binary.run(base + ["--log-format", "xml"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("log_format must be text or json"), result.stderr)
        var environment = binary
        environment.environment["LOG_LEVEL"] = "loud"
        result = try environment.run(base)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("environment LOG_LEVEL: log_level must be one of"), result.stderr)
    }

    static var silent: Logger {
        var logger = Logger(label: "test.gateway")
        logger.logLevel = .critical
        return logger
    }
}
